//! `MaybeSend` / `MaybeSync`: `Send`/`Sync` with the `send` feature, nothing without.

// r[impl types.maybe-send]
#[cfg(feature = "send")]
mod imp {
    /// `Send` when the `send` feature is on; implemented by every type otherwise.
    ///
    /// Bounds written with it let single-core executors (embassy's thread
    /// executor) run `!Send` futures while tokio gets `Send` futures.
    pub trait MaybeSend: Send {}
    impl<T: Send + ?Sized> MaybeSend for T {}

    /// `Sync` when the `send` feature is on; implemented by every type otherwise.
    pub trait MaybeSync: Sync {}
    impl<T: Sync + ?Sized> MaybeSync for T {}
}

#[cfg(not(feature = "send"))]
mod imp {
    /// `Send` when the `send` feature is on; implemented by every type otherwise.
    ///
    /// Bounds written with it let single-core executors (embassy's thread
    /// executor) run `!Send` futures while tokio gets `Send` futures.
    pub trait MaybeSend {}
    impl<T: ?Sized> MaybeSend for T {}

    /// `Sync` when the `send` feature is on; implemented by every type otherwise.
    pub trait MaybeSync {}
    impl<T: ?Sized> MaybeSync for T {}
}

pub use imp::{MaybeSend, MaybeSync};

#[cfg(test)]
mod tests {
    use super::*;

    fn is_maybe_send<T: MaybeSend + ?Sized>() {}
    fn is_maybe_sync<T: MaybeSync + ?Sized>() {}

    // r[verify types.maybe-send]
    #[test]
    fn maybe_send_follows_the_send_feature() {
        is_maybe_send::<u32>();
        is_maybe_sync::<u32>();
        // Without `send`, `!Send` types (an embassy task's `Rc`) qualify;
        // with it, this line would not compile, which is the point.
        #[cfg(not(feature = "send"))]
        {
            is_maybe_send::<std::rc::Rc<u8>>();
            is_maybe_sync::<core::cell::Cell<u8>>();
        }
        #[cfg(feature = "send")]
        {
            fn needs_send<T: Send + ?Sized>() {}
            fn via_maybe<T: MaybeSend + ?Sized>() {
                needs_send::<T>();
            }
            via_maybe::<u32>();
        }
    }
}
