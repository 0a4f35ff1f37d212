//! `FaultPlan`: which payloads a [`MemoryLink`](crate::memory::MemoryLink)
//! drops, corrupts, duplicates, or kills the link at, by commit order.

/// Faults to inject into one direction of a memory link, by payload index
/// (0 = the first payload committed in that direction).
///
/// All faults are deterministic: they depend on commit order only.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use futures::executor::block_on;
/// use vox_link_embedded::MemoryLinkPair;
/// use vox_link_embedded::sim::FaultPlan;
/// use vox_types::{Link, LinkError, LinkRx, LinkTx, LinkTxPermit, WriteSlot};
///
/// // A→B loses its payload 1 and dies after 3 payloads; B→A is clean.
/// const A_TO_B: FaultPlan = FaultPlan { drop: Some(1), ..FaultPlan::kill_after(3) };
/// static PAIR: MemoryLinkPair<CriticalSectionRawMutex, 4, 8> =
///     MemoryLinkPair::with_faults(A_TO_B, FaultPlan::NONE);
/// let (a, b) = PAIR.split();
/// let (a_tx, _a_rx) = a.split();
/// let (_b_tx, mut b_rx) = b.split();
/// let send = |byte: u8| -> Result<(), LinkError> {
///     let mut slot = block_on(a_tx.reserve())?.alloc(1)?;
///     slot.as_mut_slice()[0] = byte;
///     slot.commit();
///     Ok(())
/// };
/// for byte in [10, 11, 12, 13] {
///     send(byte)?; // the fourth is committed into the dying link
/// }
/// assert_eq!(send(14), Err(LinkError::Reset));
/// assert_eq!(block_on(b_rx.recv())?.unwrap().as_bytes(), [10]);
/// assert_eq!(block_on(b_rx.recv())?.unwrap().as_bytes(), [12], "11 was dropped");
/// assert_eq!(block_on(b_rx.recv()), Err(LinkError::Reset));
/// # Ok::<(), LinkError>(())
/// ```
// r[impl memlink.faults]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Kill the whole link (both directions) when this many payloads have
    /// been committed: payloads `0..n` are delivered, then the receiver gets
    /// [`LinkError::Reset`](vox_types::LinkError::Reset); payload `n` and later are lost.
    pub kill_after: Option<u32>,
    /// Silently drop the payload with this index.
    pub drop: Option<u32>,
    /// Flip every bit of the first byte of the payload with this index
    /// (an empty payload is left as is).
    pub corrupt: Option<u32>,
    /// Deliver the payload with this index twice (when a spare slot is free).
    pub duplicate: Option<u32>,
}

impl FaultPlan {
    /// No faults.
    pub const NONE: Self = Self { kill_after: None, drop: None, corrupt: None, duplicate: None };

    /// Kill the link after `n` payloads in this direction.
    pub const fn kill_after(n: u32) -> Self {
        Self { kill_after: Some(n), ..Self::NONE }
    }

    /// Drop payload `n`.
    pub const fn drop_nth(n: u32) -> Self {
        Self { drop: Some(n), ..Self::NONE }
    }

    /// Corrupt payload `n`.
    pub const fn corrupt_nth(n: u32) -> Self {
        Self { corrupt: Some(n), ..Self::NONE }
    }

    /// Deliver payload `n` twice.
    pub const fn duplicate_nth(n: u32) -> Self {
        Self { duplicate: Some(n), ..Self::NONE }
    }
}
