//! `BareTx` / `BarePermit`: the sending half, encoding straight into the
//! link's write slot.

use crate::SendError;
use crate::bare_conduit::Family;
use core::cell::Cell;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use vox_types::{ConduitTx, ConduitTxPermit, LinkError, LinkTx, LinkTxPermit, MsgFamily, WriteSlot};

/// Sending half of a [`BareConduit`](crate::BareConduit).
pub struct BareTx<T, F> {
    link: T,
    /// The link's first failure; the half is dead once set.
    dead: DeadFlag,
    _family: Family<F>,
}

// r[impl conduit.permit.drop]
/// Permit to send one message; dropping it sends nothing and returns the
/// link capacity it holds.
pub struct BarePermit<'a, T: LinkTx + 'a, F> {
    permit: T::Permit<'a>,
    _family: Family<F>,
}

impl<T, F> BareTx<T, F> {
    pub(crate) fn new(link: T) -> Self {
        Self { link, dead: DeadFlag::new(), _family: Family::default() }
    }
}

impl<T, F> ConduitTx for BareTx<T, F>
where
    T: LinkTx,
    F: MsgFamily,
{
    type Msg = F;
    type Permit<'a>
        = BarePermit<'a, T, F>
    where
        Self: 'a;
    type Error = SendError;

    // r[impl conduit.permit]
    async fn reserve(&self) -> Result<Self::Permit<'_>, SendError> {
        if let Some(e) = self.dead.get() {
            return Err(SendError::Link(e));
        }
        match self.link.reserve().await {
            Ok(permit) => Ok(BarePermit { permit, _family: Family::default() }),
            Err(e) => {
                self.dead.set(e);
                Err(SendError::Link(e))
            }
        }
    }

    async fn close(self) -> Result<(), SendError> {
        Ok(self.link.close().await?)
    }
}

impl<'a, T, F> ConduitTxPermit for BarePermit<'a, T, F>
where
    T: LinkTx + 'a,
    F: MsgFamily,
{
    type Msg = F;
    type Error = SendError;

    /// Computes the postcard size, allocates exactly that in the link's
    /// slot, encodes in place and commits. On any error nothing is sent and
    /// the link capacity is returned.
    // r[impl conduit.permit.send]
    // r[impl conduit.zero-copy]
    // r[impl bare.postcard]
    fn send(self, item: F::Msg<'_>) -> Result<(), SendError> {
        let encode_error = |error| SendError::Encode { family: F::NAME, error };
        let len = F::encoded_len(&item).map_err(encode_error)?;
        let mut slot = self.permit.alloc(len)?;
        F::encode(&item, slot.as_mut_slice()).map_err(encode_error)?;
        slot.commit();
        Ok(())
    }
}

/// The first link error of the sending half, set through `&self`.
///
/// A critical-section mutex keeps it `Sync` (tokio shares `&BareTx`
/// across threads) without needing compare-and-swap, which thumbv6m lacks.
struct DeadFlag(Mutex<CriticalSectionRawMutex, Cell<Option<LinkError>>>);

impl DeadFlag {
    const fn new() -> Self {
        Self(Mutex::new(Cell::new(None)))
    }
    fn get(&self) -> Option<LinkError> {
        self.0.lock(Cell::get)
    }
    fn set(&self, e: LinkError) {
        self.0.lock(|c| c.set(Some(e)));
    }
}
