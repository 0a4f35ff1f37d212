//! `SelfRef<F>`: a decoded message of family `F` together with the [`Backing`] it borrows from.

use crate::{Backing, MsgFamily};
use core::fmt;
use core::mem::ManuallyDrop;

/// A decoded message of family `F` and the bytes it borrows from, kept
/// together.
///
/// It holds an `F::Msg<'static>`, but that `'static` is a lie: the
/// borrowed fields point into the backing. So the value is only reachable
/// through [`get`](Self::get), which hands it out through `F`'s own
/// [`reborrow`](MsgFamily::reborrow) at the lifetime of the `&self`
/// borrow, never at `'static`. The family is part of the type: no other
/// family (one whose message type at `'static` is the same type, but
/// ignores its lifetime) can view the value. The value is dropped before
/// the backing.
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
/// let note = SelfRef::<NoteFamily>::try_new(Backing::from_static(&WIRE), decode_message::<NoteFamily>)?;
/// let n = note.get::<NoteFamily>();
/// assert_eq!(n, &Note { id: 7, text: "hi" });
/// // `text` borrows the backing's bytes: nothing was copied.
/// assert!(note.backing().as_bytes().as_ptr_range().contains(&n.text.as_ptr()));
/// # Ok::<(), postcard::Error>(())
/// ```
///
/// Another family cannot view the value, even one of the same message
/// type (with `get::<CountFamily>()` this compiles):
///
/// ```compile_fail,E0277
/// # use vox_types::{Backing, SelfRef, decode_message};
/// vox_types::msg_family!(CountFamily => u16);
/// vox_types::msg_family!(OtherFamily => u16);
/// let count = SelfRef::<CountFamily>::try_new(Backing::from_static(&[7]), decode_message::<CountFamily>).unwrap();
/// let _ = count.get::<OtherFamily>();
/// ```
// r[impl types.selfref]
pub struct SelfRef<F: MsgFamily> {
    // Never exposed at its stated `'static` lifetime.
    value: ManuallyDrop<F::Msg<'static>>,
    backing: ManuallyDrop<Backing>,
}

impl<F: MsgFamily> SelfRef<F> {
    /// Decodes a value of family `F` that borrows from `backing`.
    ///
    /// On error the backing is released and the error returned.
    pub fn try_new<E>(
        backing: Backing,
        decode: impl for<'a> FnOnce(&'a [u8]) -> Result<F::Msg<'a>, E>,
    ) -> Result<Self, E> {
        // SAFETY: `Backing`'s bytes stay at the same address and unmodified
        // until the backing is released, which happens only in `drop`,
        // after the value is dropped. So extending the borrow to the
        // lifetime of `Self` is sound as long as the value is never handed
        // out at `'static`, which `get` guarantees via `F::reborrow` (and
        // only `F`'s: the family is this type's parameter).
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(backing.as_bytes().as_ptr(), backing.len()) };
        let value: F::Msg<'static> = decode(bytes)?;
        Ok(Self { value: ManuallyDrop::new(value), backing: ManuallyDrop::new(backing) })
    }

    /// Wraps a value that borrows nothing (its backing is empty).
    pub fn owned(value: F::Msg<'static>) -> Self {
        Self { value: ManuallyDrop::new(value), backing: ManuallyDrop::new(Backing::from_static(&[])) }
    }

    /// The value, borrowed for as long as `self` is. `G` names the family
    /// (`msg.get::<MyFamily>()`), and can only be `F`.
    pub fn get<G>(&self) -> &F::Msg<'_>
    where
        G: SameAs<F>,
    {
        F::reborrow(&self.value)
    }

    /// The bytes the value was decoded from.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }
}

/// `Self` is `U`: lets [`SelfRef::get`] keep naming its family
/// (`get::<MyFamily>()`) while accepting only the family of the
/// `SelfRef`. Implemented only for `T: SameAs<T>`.
pub trait SameAs<U>: sealed::Sealed<U> {}

impl<T> SameAs<T> for T {}

mod sealed {
    pub trait Sealed<U> {}
    impl<T> Sealed<T> for T {}
}

impl<F: MsgFamily> Drop for SelfRef<F> {
    fn drop(&mut self) {
        // SAFETY: both fields are dropped exactly once, here; value first,
        // because it may borrow the backing's bytes.
        unsafe {
            ManuallyDrop::drop(&mut self.value);
            ManuallyDrop::drop(&mut self.backing);
        }
    }
}

impl<F: MsgFamily> fmt::Debug for SelfRef<F> {
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
        let r: SelfRef<NoteFamily> = SelfRef::try_new(Backing::from_static(wire), |b| postcard::from_bytes(b)).unwrap();
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
        let err = SelfRef::<NoteFamily>::try_new(Backing::from_shared(shared.clone()), |b| {
            postcard::from_bytes::<Note<'_>>(b)
        });
        assert!(err.is_err());
        assert_eq!(Arc::strong_count(&shared), 1, "backing released on decode error");

        let wire = encode(&Note { id: 1, text: "boxed", blob: &[] });
        let r = SelfRef::<NoteFamily>::try_new(Backing::from(wire.to_vec()), |b| postcard::from_bytes(b)).unwrap();
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
            let r = SelfRef::<ReadsOnDropFamily>::try_new(Backing::from(wire), |b| postcard::from_bytes(b)).unwrap();
            drop(r);
            assert_eq!(DROP_SUM.with(Cell::get), 18);
        }
    }

    #[test]
    fn owned_value_has_empty_backing() {
        msg_family!(U32Family => u32);
        let r = SelfRef::<U32Family>::owned(5);
        assert_eq!(*r.get::<U32Family>(), 5);
        assert!(r.backing().is_empty());
    }
}
