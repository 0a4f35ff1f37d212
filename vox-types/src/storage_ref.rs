//! `StorageRef`: how the halves of a link or conduit reach their shared
//! storage (a `'static` or an `Arc`), and how a slot of it is lent out as a
//! [`Backing`].

use crate::{Backing, BackingVTable};
use core::marker::PhantomData;
use core::ptr::NonNull;

/// Storage that lends slots and takes them back by token.
pub trait LendsSlots: 'static {
    /// Returns the slot lent under `token`.
    ///
    /// # Safety
    ///
    /// `token` is one this storage lent (the [`Backing`] made by
    /// [`StorageRef::lend`] carries it), and it is released once, when
    /// nothing reads the slot's bytes any more: the backing's drop does
    /// exactly that. A slot released while lent may be written under a
    /// live borrow of its bytes.
    ///
    /// So safe code cannot call it:
    ///
    /// ```compile_fail,E0133
    /// fn give_back<P: vox_types::LendsSlots>(storage: &P) {
    ///     storage.release_slot(0);
    /// }
    /// ```
    unsafe fn release_slot(&self, token: usize);
}

/// A reference to link storage: `'static` (no allocator) or shared.
pub enum StorageRef<P: 'static> {
    /// Storage in a `static`.
    Static(&'static P),
    /// Storage on the heap, shared.
    #[cfg(feature = "alloc")]
    Shared(alloc::sync::Arc<P>),
}

impl<P> From<&'static P> for StorageRef<P> {
    fn from(p: &'static P) -> Self {
        Self::Static(p)
    }
}

#[cfg(feature = "alloc")]
impl<P> From<alloc::sync::Arc<P>> for StorageRef<P> {
    fn from(p: alloc::sync::Arc<P>) -> Self {
        Self::Shared(p)
    }
}

impl<P> Clone for StorageRef<P> {
    fn clone(&self) -> Self {
        match self {
            Self::Static(p) => Self::Static(p),
            #[cfg(feature = "alloc")]
            Self::Shared(p) => Self::Shared(p.clone()),
        }
    }
}

impl<P> core::ops::Deref for StorageRef<P> {
    type Target = P;
    fn deref(&self) -> &P {
        match self {
            Self::Static(p) => p,
            #[cfg(feature = "alloc")]
            Self::Shared(p) => p,
        }
    }
}

struct LentSlot<P>(PhantomData<P>);

impl<P: LendsSlots> LentSlot<P> {
    const STATIC: &'static BackingVTable = &BackingVTable { release: Self::release_static };
    #[cfg(feature = "alloc")]
    const SHARED: &'static BackingVTable = &BackingVTable { release: Self::release_shared };

    unsafe fn release_static(owner: *const (), token: usize) {
        // SAFETY: `owner` is the `&'static P` given in `lend`.
        let storage = unsafe { &*owner.cast::<P>() };
        // SAFETY: the backing's drop, once: `token` is the one `lend`
        // was given, and the backing's bytes are no longer borrowed.
        unsafe { storage.release_slot(token) };
    }

    #[cfg(feature = "alloc")]
    unsafe fn release_shared(owner: *const (), token: usize) {
        // SAFETY: `owner` came from `Arc::into_raw` in `lend`; this takes
        // that strong count back, once.
        let storage = unsafe { alloc::sync::Arc::from_raw(owner.cast::<P>()) };
        // SAFETY: as in `release_static`.
        unsafe { storage.release_slot(token) };
    }
}

impl<P: LendsSlots> StorageRef<P> {
    /// Lends `len` bytes at `ptr` as a [`Backing`] that calls
    /// `release_slot(token)` when dropped.
    ///
    /// # Safety
    ///
    /// `ptr` points into the storage, is valid for `len` bytes, and those
    /// bytes are not written until `release_slot(token)` runs. (A backing
    /// crosses threads only under the `send` feature, which makes `P`
    /// `Sync` here.)
    pub unsafe fn lend(&self, ptr: NonNull<u8>, len: usize, token: usize) -> Backing
    where
        P: crate::MaybeSync,
    {
        match self {
            Self::Static(p) => {
                let owner = core::ptr::from_ref::<P>(*p).cast::<()>();
                // SAFETY: the caller guarantees the bytes; the storage is
                // `'static`, so it outlives the backing.
                unsafe { Backing::from_raw_parts(ptr, len, owner, token, LentSlot::<P>::STATIC) }
            }
            #[cfg(feature = "alloc")]
            Self::Shared(p) => {
                let owner = alloc::sync::Arc::into_raw(p.clone()).cast::<()>();
                // SAFETY: as above; the backing holds a strong count, so the
                // storage outlives it.
                unsafe { Backing::from_raw_parts(ptr, len, owner, token, LentSlot::<P>::SHARED) }
            }
        }
    }
}
