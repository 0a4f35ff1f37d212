//! `Backing`: type-erased, immutable byte storage that a received payload lives in.
//!
//! A pointer, a length and a `&'static` vtable with a release function (the
//! way `bytes::Bytes` erases its storage), so a slot of a static pool, a
//! `Box<[u8]>` and an `Arc<[u8]>` are all the same type and no allocator is
//! needed.

use core::fmt;
use core::ptr::NonNull;

/// How to release the storage behind a [`Backing`].
#[derive(Debug)]
pub struct BackingVTable {
    /// Called exactly once, when the [`Backing`] is dropped, with the
    /// `owner` and `token` given to [`Backing::from_raw_parts`]. (Not the
    /// pointer and length: [`Backing::narrow`] changes those.)
    pub release: unsafe fn(owner: *const (), token: usize),
}

/// Immutable bytes plus whatever keeps them alive.
///
/// The bytes never move while the `Backing` exists, even when the `Backing`
/// itself is moved, so values decoded from them may borrow them (see
/// [`SelfRef`](crate::SelfRef)).
///
/// ```
/// use vox_types::Backing;
///
/// let frame = Backing::from_static(b"hdr:body");
/// assert_eq!(frame.len(), 8);
/// // A view of part of the bytes, on the same storage.
/// let body = frame.narrow(4, 4).unwrap();
/// assert_eq!(body.as_bytes(), b"body");
/// assert!(body.narrow(2, 3).is_none(), "outside the view");
/// ```
pub struct Backing {
    ptr: NonNull<u8>,
    len: usize,
    owner: *const (),
    token: usize,
    vtable: &'static BackingVTable,
}

// SAFETY: `from_raw_parts` requires the bytes to be immutable and shareable
// across threads and `release` to be callable from any thread; the safe
// constructors (static, Box, Arc) satisfy that, and so does
// `StorageRef::lend`, which requires its storage to be `Sync` under this
// feature. Without `send`, a backing stays on its thread: storage behind a
// `!Sync` mutex (embassy's `NoopRawMutex`) may lend slots, and their
// release must not run on another thread.
#[cfg(feature = "send")]
unsafe impl Send for Backing {}
// SAFETY: the bytes are only ever read through `&self`.
unsafe impl Sync for Backing {}

unsafe fn release_nothing(_: *const (), _: usize) {}

static STATIC_VTABLE: BackingVTable = BackingVTable { release: release_nothing };

impl Backing {
    /// Builds a backing from raw parts.
    ///
    /// # Safety
    ///
    /// - `ptr` is valid for reads of `len` bytes, and those bytes are not
    ///   written or moved until `vtable.release` is called;
    /// - `vtable.release(owner, token)` may be called once, from any thread,
    ///   and then frees or recycles the storage.
    pub const unsafe fn from_raw_parts(
        ptr: NonNull<u8>,
        len: usize,
        owner: *const (),
        token: usize,
        vtable: &'static BackingVTable,
    ) -> Self {
        Self { ptr, len, owner, token, vtable }
    }

    /// Bytes with a `'static` lifetime; releasing them does nothing.
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        // SAFETY: a reference is never null.
        let ptr = unsafe { NonNull::new_unchecked(bytes.as_ptr().cast_mut()) };
        // SAFETY: static bytes are immutable, valid forever, and releasing
        // them does nothing.
        unsafe { Self::from_raw_parts(ptr, bytes.len(), core::ptr::null(), 0, &STATIC_VTABLE) }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `from_raw_parts` guarantees `ptr` is valid for `len`
        // immutable bytes until release, which only happens in `drop`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Narrows the view to `len` bytes starting at `start`, keeping the
    /// same storage (released as before). `None` if the range is outside
    /// the current view.
    pub fn narrow(mut self, start: usize, len: usize) -> Option<Self> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `start <= end <= self.len`, so the new pointer stays
        // inside (or one past) the valid range, and is non-null.
        self.ptr = unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(start)) };
        self.len = len;
        Some(self)
    }
}

#[cfg(feature = "alloc")]
mod heap {
    use super::{Backing, BackingVTable};
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use core::ptr::NonNull;

    /// `owner` is the boxed slice's pointer, `token` its length.
    unsafe fn release_box(owner: *const (), len: usize) {
        let raw = core::ptr::slice_from_raw_parts_mut(owner.cast::<u8>().cast_mut(), len);
        // SAFETY: `ptr`/`len` came from `Box::into_raw` in `from_boxed` and
        // are released exactly once.
        drop(unsafe { Box::from_raw(raw) });
    }

    /// `owner` is the shared slice's pointer, `token` its length.
    unsafe fn release_arc(owner: *const (), len: usize) {
        let raw = core::ptr::slice_from_raw_parts(owner.cast::<u8>(), len);
        // SAFETY: `ptr`/`len` came from `Arc::into_raw` in `from_shared`
        // and this drops the one strong count that call leaked.
        drop(unsafe { Arc::from_raw(raw) });
    }

    static BOX_VTABLE: BackingVTable = BackingVTable { release: release_box };
    static ARC_VTABLE: BackingVTable = BackingVTable { release: release_arc };

    impl Backing {
        /// Owns a boxed slice; dropping the backing frees it.
        pub fn from_boxed(bytes: Box<[u8]>) -> Self {
            let len = bytes.len();
            let raw = Box::into_raw(bytes);
            // SAFETY: `Box::into_raw` never returns null.
            let ptr = unsafe { NonNull::new_unchecked(raw.cast::<u8>()) };
            // SAFETY: the box is uniquely owned by this backing, never
            // written, and `release_box` rebuilds and frees it once.
            unsafe { Self::from_raw_parts(ptr, len, raw.cast::<()>().cast_const(), len, &BOX_VTABLE) }
        }

        /// Holds one strong count of a shared slice.
        pub fn from_shared(bytes: Arc<[u8]>) -> Self {
            let len = bytes.len();
            let raw = Arc::into_raw(bytes);
            // SAFETY: `Arc::into_raw` never returns null.
            let ptr = unsafe { NonNull::new_unchecked(raw.cast::<u8>().cast_mut()) };
            // SAFETY: `Arc<[u8]>` contents are immutable and `Sync`;
            // `release_arc` drops the strong count taken here, once.
            unsafe { Self::from_raw_parts(ptr, len, raw.cast::<()>(), len, &ARC_VTABLE) }
        }
    }

    impl From<alloc::vec::Vec<u8>> for Backing {
        fn from(v: alloc::vec::Vec<u8>) -> Self {
            Self::from_boxed(v.into_boxed_slice())
        }
    }
}

// r[impl types.selfref.miri]
impl Drop for Backing {
    fn drop(&mut self) {
        // SAFETY: called once, with the parts given to `from_raw_parts`.
        unsafe { (self.vtable.release)(self.owner, self.token) }
    }
}

impl AsRef<[u8]> for Backing {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Backing {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Backing {}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backing").field("len", &self.len).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// Without `send`, a backing stays on its thread (its storage may sit
    /// behind a `!Sync` mutex); with it, it may cross (lenders are `Sync`).
    /// Checked at compile time: with `Backing: Send` and no `send`, the
    /// call below is ambiguous and this crate's tests do not build.
    #[test]
    fn a_backing_crosses_threads_only_under_the_send_feature() {
        #[cfg(not(feature = "send"))]
        {
            trait AmbiguousIfSend<A> {
                fn check() {}
            }
            impl<T: ?Sized> AmbiguousIfSend<()> for T {}
            #[allow(dead_code)]
            struct IsSend;
            impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}
            <Backing as AmbiguousIfSend<_>>::check();
        }
        #[cfg(feature = "send")]
        {
            fn is_send<T: Send>() {}
            is_send::<Backing>();
        }
    }

    // r[verify types.selfref.miri]
    #[test]
    fn static_backing_reads_its_bytes() {
        let b = Backing::from_static(b"hello");
        assert_eq!(b.as_bytes(), b"hello");
        assert_eq!(b.len(), 5);
        assert!(!b.is_empty());
        assert!(Backing::from_static(&[]).is_empty());
    }

    static RELEASED: AtomicUsize = AtomicUsize::new(0);
    static SLOT: [u8; 4] = [1, 2, 3, 4];

    unsafe fn count_release(owner: *const (), token: usize) {
        assert!(owner.is_null());
        assert_eq!(token, 7);
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }
    static COUNTING: BackingVTable = BackingVTable { release: count_release };

    #[test]
    fn custom_release_runs_exactly_once_after_moves() {
        let before = RELEASED.load(Ordering::SeqCst);
        // SAFETY: static bytes, release only counts.
        let b = unsafe { Backing::from_raw_parts(NonNull::from(&SLOT).cast(), 4, core::ptr::null(), 7, &COUNTING) };
        let moved = [b];
        let [b] = moved;
        assert_eq!(b.as_bytes(), &[1, 2, 3, 4]);
        drop(b);
        assert_eq!(RELEASED.load(Ordering::SeqCst), before + 1);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn boxed_and_shared_backings_free_their_storage() {
        extern crate alloc;
        use alloc::sync::Arc;
        let b = Backing::from(alloc::vec![9u8; 33]);
        assert_eq!(b.as_bytes(), &[9u8; 33][..]);
        let shared: Arc<[u8]> = Arc::from(&b"shared"[..]);
        let b2 = Backing::from_shared(shared.clone());
        assert_eq!(Arc::strong_count(&shared), 2);
        assert_eq!(b2.as_bytes(), b"shared");
        drop(b2);
        assert_eq!(Arc::strong_count(&shared), 1);
        let empty = Backing::from_boxed(alloc::boxed::Box::new([]));
        assert!(empty.is_empty());
        // A narrowed view still frees the whole allocation (Miri checks).
        let b = Backing::from(alloc::vec![1u8, 2, 3, 4, 5]).narrow(1, 3).unwrap();
        assert_eq!(b.as_bytes(), &[2, 3, 4]);
        let b2 = Backing::from_shared(shared.clone()).narrow(6, 0).unwrap();
        assert!(b2.is_empty());
        drop(b2);
        assert_eq!(Arc::strong_count(&shared), 1);
        assert!(Backing::from(alloc::vec![1u8]).narrow(1, 1).is_none());
        assert!(Backing::from(alloc::vec![1u8]).narrow(usize::MAX, 2).is_none());
    }
}
