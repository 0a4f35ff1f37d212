//! `SelfRef<T>`: a decoded value together with the [`Backing`] it borrows from.

use crate::{Backing, MsgFamily};
use core::fmt;
use core::mem::ManuallyDrop;

/// A decoded message and the bytes it borrows from, kept together.
///
/// `T` is a message type at `'static` (`F::Msg<'static>`), but that
/// `'static` is a lie: the borrowed fields point into the backing. So the
/// value is only reachable through [`get`](Self::get), which hands it out
/// at the lifetime of the `&self` borrow, never at `'static`. The value is
/// dropped before the backing.
///
/// ```
/// use postcard_schema::Schema;
/// use serde::{Deserialize, Serialize};
/// use vox_types::{Backing, SelfRef, decode_message};
///
/// #[derive(Serialize, Deserialize, Schema, Debug, PartialEq)]
/// struct Note<'a> { id: u16, text: &'a str }
/// vox_types::msg_family!(NoteFamily => Note<'a>);
///
/// // A received payload: postcard bytes in a link's slot (here, a static).
/// static WIRE: [u8; 4] = [7, 2, b'h', b'i'];
/// let note: SelfRef<Note<'static>> =
///     SelfRef::try_new::<NoteFamily, _>(Backing::from_static(&WIRE), decode_message::<NoteFamily>)?;
/// let n = note.get::<NoteFamily>();
/// assert_eq!(n, &Note { id: 7, text: "hi" });
/// // `text` borrows the backing's bytes: nothing was copied.
/// assert!(note.backing().as_bytes().as_ptr_range().contains(&n.text.as_ptr()));
/// # Ok::<(), postcard::Error>(())
/// ```
// r[impl types.selfref]
pub struct SelfRef<T: 'static> {
    // Never exposed at its stated `'static` lifetime.
    value: ManuallyDrop<T>,
    backing: ManuallyDrop<Backing>,
}

impl<T: 'static> SelfRef<T> {
    /// Decodes a value of family `F` that borrows from `backing`.
    ///
    /// On error the backing is released and the error returned.
    pub fn try_new<F, E>(
        backing: Backing,
        decode: impl for<'a> FnOnce(&'a [u8]) -> Result<F::Msg<'a>, E>,
    ) -> Result<Self, E>
    where
        F: MsgFamily,
        F::Msg<'static>: SameAs<T>,
    {
        // SAFETY: `Backing`'s bytes stay at the same address and unmodified
        // until the backing is released, which happens only in `drop`,
        // after the value is dropped. So extending the borrow to the
        // lifetime of `Self` is sound as long as the value is never handed
        // out at `'static`, which `get` guarantees via `F::reborrow`.
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(backing.as_bytes().as_ptr(), backing.len()) };
        let value: F::Msg<'static> = decode(bytes)?;
        Ok(Self { value: ManuallyDrop::new(value.into_same()), backing: ManuallyDrop::new(backing) })
    }

    /// Wraps a value that borrows nothing (its backing is empty).
    pub fn owned(value: T) -> Self {
        Self { value: ManuallyDrop::new(value), backing: ManuallyDrop::new(Backing::from_static(&[])) }
    }

    /// The value, borrowed for as long as `self` is.
    pub fn get<F>(&self) -> &F::Msg<'_>
    where
        F: MsgFamily,
        T: SameAs<F::Msg<'static>>,
    {
        F::reborrow(T::as_same(&self.value))
    }

    /// The bytes the value was decoded from.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }
}

/// `Self` is `U`: lets [`SelfRef`] tie its `T` to a family's
/// `Msg<'static>` without an associated-type equality bound (which would
/// pin every `F::Msg<'x>` to `'static`). Implemented only for `T: SameAs<T>`.
pub trait SameAs<U>: sealed::Sealed<U> {
    /// `self` as `U`.
    fn into_same(self) -> U;
    /// `&self` as `&U`.
    fn as_same(&self) -> &U;
}

impl<T> SameAs<T> for T {
    fn into_same(self) -> T {
        self
    }
    fn as_same(&self) -> &T {
        self
    }
}

mod sealed {
    pub trait Sealed<U> {}
    impl<T> Sealed<T> for T {}
}

impl<T: 'static> Drop for SelfRef<T> {
    fn drop(&mut self) {
        // SAFETY: both fields are dropped exactly once, here; value first,
        // because it may borrow the backing's bytes.
        unsafe {
            ManuallyDrop::drop(&mut self.value);
            ManuallyDrop::drop(&mut self.backing);
        }
    }
}

impl<T: 'static> fmt::Debug for SelfRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfRef").field("backing", &*self.backing).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg_family;
    #[cfg(feature = "alloc")]
    use core::cell::Cell;
    use postcard_schema::Schema;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Schema, Debug, PartialEq)]
    struct Note<'a> {
        id: u16,
        text: &'a str,
        #[serde(borrow)]
        blob: &'a [u8],
    }
    msg_family!(NoteFamily => Note<'a>);

    fn encode(n: &Note<'_>) -> [u8; 64] {
        let mut buf = [0u8; 64];
        let used = postcard::to_slice(n, &mut buf).map(|s| s.len()).unwrap_or(0);
        assert!(used > 0);
        buf
    }

    // r[verify types.selfref]
    // r[verify types.selfref.miri]
    #[test]
    fn decoded_fields_borrow_the_backing_and_survive_moves() {
        static WIRE: std::sync::OnceLock<[u8; 64]> = std::sync::OnceLock::new();
        let wire = WIRE.get_or_init(|| encode(&Note { id: 7, text: "hi", blob: &[1, 2] }));
        let r: SelfRef<Note<'static>> =
            SelfRef::try_new::<NoteFamily, _>(Backing::from_static(wire), |b| postcard::from_bytes(b)).unwrap();
        let moved = [r];
        let [r] = moved;
        let n = r.get::<NoteFamily>();
        assert_eq!(n, &Note { id: 7, text: "hi", blob: &[1, 2] });
        let range = r.backing().as_bytes().as_ptr_range();
        assert!(range.contains(&n.text.as_ptr()));
        assert!(range.contains(&n.blob.as_ptr()));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn decode_error_releases_backing_and_boxed_backing_is_freed() {
        extern crate alloc;
        use alloc::sync::Arc;
        let shared: Arc<[u8]> = Arc::from(&[0xffu8, 0xff, 0xff][..]);
        let err = SelfRef::<Note<'static>>::try_new::<NoteFamily, _>(Backing::from_shared(shared.clone()), |b| {
            postcard::from_bytes::<Note<'_>>(b)
        });
        assert!(err.is_err());
        assert_eq!(Arc::strong_count(&shared), 1, "backing released on decode error");

        let wire = encode(&Note { id: 1, text: "boxed", blob: &[] });
        let r = SelfRef::<Note<'static>>::try_new::<NoteFamily, _>(Backing::from(wire.to_vec()), |b| {
            postcard::from_bytes(b)
        })
        .unwrap();
        assert_eq!(r.get::<NoteFamily>().text, "boxed");
    }

    /// A value whose destructor reads the borrowed bytes: if the backing were
    /// freed first, Miri reports a use-after-free.
    #[cfg(feature = "alloc")]
    mod drop_order {
        use super::*;

        #[derive(Serialize, Deserialize, Schema)]
        struct ReadsOnDrop<'a>(&'a [u8]);
        impl Drop for ReadsOnDrop<'_> {
            fn drop(&mut self) {
                DROP_SUM.with(|s| s.set(self.0.iter().map(|&b| b as u32).sum()));
            }
        }
        std::thread_local!(static DROP_SUM: Cell<u32> = const { Cell::new(0) });
        msg_family!(ReadsOnDropFamily => ReadsOnDrop<'a>);

        #[test]
        fn value_is_dropped_before_backing() {
            let wire = postcard::to_allocvec(&ReadsOnDrop(&[5, 6, 7])).unwrap();
            let r = SelfRef::<ReadsOnDrop<'static>>::try_new::<ReadsOnDropFamily, _>(Backing::from(wire), |b| {
                postcard::from_bytes(b)
            })
            .unwrap();
            drop(r);
            assert_eq!(DROP_SUM.with(Cell::get), 18);
        }
    }

    #[test]
    fn owned_value_has_empty_backing() {
        msg_family!(U32Family => u32);
        let r = SelfRef::<u32>::owned(5);
        assert_eq!(*r.get::<U32Family>(), 5);
        assert!(r.backing().is_empty());
    }
}
