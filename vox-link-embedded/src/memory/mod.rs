//! [`MemoryLink`]: an in-memory, bounded, runtime-agnostic link pair, for
//! two tasks of one program, and for tests (with deterministic faults from
//! a [`FaultPlan`]).
//!
//! Storage is a [`MemoryLinkPair`]: in a `static` (no allocator) or, with
//! `alloc`, behind an `Arc` ([`MemoryLinkPair::new_shared`]). Each direction
//! is a queue of `SLOTS` payload slots of `MTU` bytes: `reserve` waits for a
//! free slot, the sender writes in place, and the receiver gets the slot
//! itself as its [`Backing`](vox_types::Backing), so a payload is never copied.

use crate::queue::queue_link::{CommitAction, QueueLink, QueueStorage, split_token};
use crate::queue::queue_link_types;
use crate::queue::slot_queue::SlotQueue;
use crate::sim::FaultPlan;
use core::cell::Cell;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use vox_types::LinkError;
use vox_types::{LendsSlots, StorageRef};

#[derive(Clone, Copy)]
struct Faults {
    plan: FaultPlan,
    committed: u32,
    /// `reserve` calls on this direction that started waiting while the
    /// sender's own receive slots were all taken.
    stalled_reserves: u32,
}

/// Storage for both directions of an in-memory link: `SLOTS` slots (1 to
/// 255, checked at compile time) of up to `MTU` bytes each way.
///
/// `M` is the embassy-sync raw mutex guarding it: `CriticalSectionRawMutex`
/// to share across threads or interrupts, `NoopRawMutex` on a single-core
/// executor.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use futures::executor::block_on;
/// use vox_link_embedded::MemoryLinkPair;
/// use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};
///
/// // Two slots of up to 32 bytes each way; no allocator.
/// static PAIR: MemoryLinkPair<CriticalSectionRawMutex, 2, 32> = MemoryLinkPair::new();
/// let (a, b) = PAIR.split();
/// let (a_tx, _a_rx) = a.split();
/// let (_b_tx, mut b_rx) = b.split();
///
/// let mut slot = block_on(a_tx.reserve())?.alloc(4)?;
/// slot.as_mut_slice().copy_from_slice(b"ping");
/// slot.commit();
/// let got = block_on(b_rx.recv())?.unwrap();
/// assert_eq!(got.as_bytes(), b"ping");
/// // The receiver holds the sender's slot itself, not a copy...
/// assert_eq!(PAIR.slots_in_use(), 1);
/// drop(got);
/// // ...until it drops the payload.
/// assert_eq!(PAIR.slots_in_use(), 0);
/// # Ok::<(), vox_types::LinkError>(())
/// ```
// r[impl memlink.pair]
pub struct MemoryLinkPair<M: RawMutex, const SLOTS: usize, const MTU: usize> {
    queues: [SlotQueue<M, SLOTS, MTU>; 2],
    faults: Mutex<M, [Cell<Faults>; 2]>,
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> MemoryLinkPair<M, SLOTS, MTU> {
    /// Empty storage, usable in a `static`.
    pub const fn new() -> Self {
        Self::with_faults(FaultPlan::NONE, FaultPlan::NONE)
    }

    /// Storage whose direction A→B follows `a_to_b` and B→A `b_to_a`.
    pub const fn with_faults(a_to_b: FaultPlan, b_to_a: FaultPlan) -> Self {
        Self {
            queues: [SlotQueue::new(), SlotQueue::new()],
            faults: Mutex::new([
                Cell::new(Faults { plan: a_to_b, committed: 0, stalled_reserves: 0 }),
                Cell::new(Faults { plan: b_to_a, committed: 0, stalled_reserves: 0 }),
            ]),
        }
    }

    /// Splits static storage into its two ends, A and B.
    ///
    /// Call once per storage: a second call returns ends that share the same
    /// queues.
    pub fn split(&'static self) -> (MemoryLink<M, SLOTS, MTU>, MemoryLink<M, SLOTS, MTU>) {
        ends(StorageRef::Static(self))
    }

    /// Kills the link now: both senders fail at once, both receivers after
    /// draining what was already committed.
    pub fn kill(&self) {
        for q in &self.queues {
            q.kill(LinkError::Reset);
        }
    }

    /// `reserve` calls of end A and of end B that started waiting while
    /// that end's own receive slots were all taken: a task that sends
    /// before it reads, waiting for itself (see the bare conduit's
    /// liveness bound). Not a stall by itself when another task reads.
    pub fn stalled_reserves(&self) -> (u32, u32) {
        self.faults.lock(|[a, b]| (a.get().stalled_reserves, b.get().stalled_reserves))
    }

    /// Slots currently reserved, queued or lent, over both directions.
    pub fn slots_in_use(&self) -> usize {
        self.queues.iter().map(SlotQueue::slots_in_use).sum()
    }

    fn fault_action(&self, dir: usize) -> CommitAction {
        self.faults.lock(|f| {
            let [a, b] = f;
            let cell = if dir == 0 { a } else { b };
            let mut st = cell.get();
            let n = st.committed;
            st.committed = n.saturating_add(1);
            cell.set(st);
            let p = st.plan;
            if p.kill_after.is_some_and(|k| n >= k) {
                CommitAction::Kill
            } else if p.drop == Some(n) {
                CommitAction::Drop
            } else if p.corrupt == Some(n) {
                CommitAction::Corrupt
            } else if p.duplicate == Some(n) {
                CommitAction::Duplicate
            } else {
                CommitAction::Deliver
            }
        })
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> LendsSlots for MemoryLinkPair<M, SLOTS, MTU> {
    unsafe fn release_slot(&self, token: usize) {
        let (dir, idx) = split_token(token);
        self.queue(dir).release(idx);
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> QueueStorage<M, SLOTS, MTU>
    for MemoryLinkPair<M, SLOTS, MTU>
{
    fn queue(&self, dir: usize) -> &SlotQueue<M, SLOTS, MTU> {
        // `dir` is always 0 or 1, set by `ends`.
        let [a, b] = &self.queues;
        if dir == 0 { a } else { b }
    }

    fn commit_action(&self, dir: usize) -> CommitAction {
        self.fault_action(dir)
    }

    fn kill(&self) {
        MemoryLinkPair::kill(self);
    }

    fn stalled_reserve(&self, dir: usize) {
        self.faults.lock(|[a, b]| {
            let cell = if dir == 0 { a } else { b };
            let mut st = cell.get();
            st.stalled_reserves = st.stalled_reserves.saturating_add(1);
            cell.set(st);
        });
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Default for MemoryLinkPair<M, SLOTS, MTU> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> MemoryLinkPair<M, SLOTS, MTU> {
    /// Fresh heap storage, split into its ends A and B.
    ///
    /// ```
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use futures::executor::block_on;
    /// use vox_link_embedded::MemoryLinkPair;
    /// use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};
    ///
    /// let (a, b) = MemoryLinkPair::<CriticalSectionRawMutex, 4, 128>::new_shared();
    /// let (a_tx, a_rx) = a.split();
    /// let (b_tx, mut b_rx) = b.split();
    /// let mut slot = block_on(a_tx.reserve())?.alloc(4)?;
    /// slot.as_mut_slice().copy_from_slice(b"keep");
    /// slot.commit();
    /// let kept = block_on(b_rx.recv())?.unwrap();
    /// drop((a_tx, a_rx, b_tx, b_rx));
    /// // A received payload keeps the heap storage alive.
    /// assert_eq!(kept.as_bytes(), b"keep");
    /// # Ok::<(), vox_types::LinkError>(())
    /// ```
    pub fn new_shared() -> (MemoryLink<M, SLOTS, MTU>, MemoryLink<M, SLOTS, MTU>) {
        Self::new_shared_with_faults(FaultPlan::NONE, FaultPlan::NONE).0
    }

    /// Fresh heap storage with faults, its ends A and B, and a handle to
    /// kill it or inspect it.
    #[allow(clippy::type_complexity)]
    pub fn new_shared_with_faults(
        a_to_b: FaultPlan,
        b_to_a: FaultPlan,
    ) -> ((MemoryLink<M, SLOTS, MTU>, MemoryLink<M, SLOTS, MTU>), alloc::sync::Arc<Self>) {
        let pair = alloc::sync::Arc::new(Self::with_faults(a_to_b, b_to_a));
        (ends(StorageRef::Shared(pair.clone())), pair)
    }
}

fn ends<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize>(
    pair: StorageRef<MemoryLinkPair<M, SLOTS, MTU>>,
) -> (MemoryLink<M, SLOTS, MTU>, MemoryLink<M, SLOTS, MTU>) {
    (MemoryLink(QueueLink::new(pair.clone(), 0, 1)), MemoryLink(QueueLink::new(pair, 1, 0)))
}

queue_link_types! {
    MemoryLinkPair;
    /// One end of an in-memory link: split it into its halves with
    /// [`Link::split`](vox_types::Link::split).
    ///
    /// ```
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use futures::executor::block_on;
    /// use vox_link_embedded::{MemoryLink, MemoryLinkPair};
    /// use vox_types::{Link, LinkError, LinkRx, LinkTx};
    ///
    /// static PAIR: MemoryLinkPair<CriticalSectionRawMutex, 2, 32> = MemoryLinkPair::new();
    /// let (a, b): (MemoryLink<_, 2, 32>, MemoryLink<_, 2, 32>) = PAIR.split();
    /// let (a_tx, mut a_rx) = a.split();
    /// let (b_tx, mut b_rx) = b.split();
    /// // Closed gracefully, a direction ends with end-of-stream...
    /// block_on(a_tx.close())?;
    /// assert!(block_on(b_rx.recv())?.is_none());
    /// // ...dropped, with an error.
    /// drop(b_tx);
    /// assert_eq!(block_on(a_rx.recv()), Err(LinkError::Closed));
    /// # Ok::<(), LinkError>(())
    /// ```
    link MemoryLink;
    /// Sending half of a [`MemoryLink`]. [`close`](vox_types::LinkTx::close)
    /// ends the direction gracefully (the peer reads end-of-stream after
    /// what was committed); dropping it abandons the direction (the peer
    /// reads [`LinkError::Closed`] after what was committed).
    tx MemoryLinkTx;
    /// Receiving half of a [`MemoryLink`]; dropping it makes the peer's
    /// sends fail with [`LinkError::Closed`].
    rx MemoryLinkRx;
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use futures::FutureExt;
    use futures::executor::block_on;
    use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

    type Pair = MemoryLinkPair<CriticalSectionRawMutex, 2, 8>;

    fn send<L: LinkTx>(tx: &L, bytes: &[u8]) -> Result<(), LinkError> {
        let permit = tx.reserve().now_or_never().ok_or(LinkError::Closed)??;
        let mut slot = permit.alloc(bytes.len())?;
        slot.as_mut_slice().copy_from_slice(bytes);
        slot.commit();
        Ok(())
    }

    // r[verify memlink.pair]
    #[test]
    fn static_storage_round_trip_lends_the_slot_itself() {
        static PAIR: Pair = Pair::new();
        let (a, b) = PAIR.split();
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        send(&atx, b"abc").unwrap();
        let got = block_on(brx.recv()).unwrap().unwrap();
        assert_eq!(got.as_bytes(), b"abc");
        let slots = PAIR.queue(0);
        let in_slot = (0..2).any(|i| slots.slot_ptr(i).as_ptr().cast_const() == got.as_bytes().as_ptr());
        assert!(in_slot, "received bytes are the queue slot, not a copy");
        assert_eq!(PAIR.slots_in_use(), 1);
        drop(got);
        assert_eq!(PAIR.slots_in_use(), 0, "dropping the backing returns the slot");
    }

    // Run under Miri by the test command: the bytes are read in the slot
    // itself, and the slot returns to the queue when the reader is done.
    #[test]
    fn reading_in_place_lends_the_slot_for_the_call_only() {
        use core::task::Poll;
        static PAIR: Pair = Pair::new();
        let (a, b) = PAIR.split();
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        // More payloads than slots: each read makes room for the next.
        for round in 0..5u8 {
            send(&atx, &[round, round + 1, round + 2]).unwrap();
            let got = brx.poll_recv_in_place(&mut cx, |bytes| {
                assert_eq!(PAIR.slots_in_use(), 1, "the slot is lent while the bytes are read");
                let slots = PAIR.queue(0);
                let in_slot = (0..2).any(|i| slots.slot_ptr(i).as_ptr().cast_const() == bytes.as_ptr());
                assert!(in_slot, "the bytes are the queue slot, not a copy");
                bytes.to_vec()
            });
            assert_eq!(got, Poll::Ready(Ok(Some(std::vec![round, round + 1, round + 2]))));
            assert_eq!(PAIR.slots_in_use(), 0, "the slot is back once the reader returns");
        }
        // Nothing there: pending, and the reader is not called.
        let pending: Poll<Result<Option<()>, LinkError>> = brx.poll_recv_in_place(&mut cx, |_| unreachable!());
        assert_eq!(pending, Poll::Pending);
        // The end of the stream, as `poll_recv` reports it.
        block_on(atx.close()).unwrap();
        let ended: Poll<Result<Option<()>, LinkError>> = brx.poll_recv_in_place(&mut cx, |_| unreachable!());
        assert_eq!(ended, Poll::Ready(Ok(None)));
    }

    // Run under Miri too: a reader that panics still returns the slot.
    #[cfg(feature = "std")]
    #[test]
    fn a_reader_that_panics_returns_the_slot() {
        use core::task::Poll;
        static PAIR: Pair = Pair::new();
        let (a, b) = PAIR.split();
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        send(&atx, b"boom").unwrap();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Poll<Result<Option<()>, LinkError>> = brx.poll_recv_in_place(&mut cx, |_| panic!("reader failed"));
        }));
        assert!(unwound.is_err());
        assert_eq!(PAIR.slots_in_use(), 0, "the slot is back after the reader unwound");
        send(&atx, b"next").unwrap();
        assert_eq!(brx.poll_recv_in_place(&mut cx, <[u8]>::to_vec), Poll::Ready(Ok(Some(b"next".to_vec()))));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn bounded_queue_makes_reserve_wait_and_capacity_returns() {
        let (a, b) = Pair::new_shared();
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        send(&atx, b"1").unwrap();
        send(&atx, b"2").unwrap();
        assert!(atx.reserve().now_or_never().is_none(), "third reserve must wait");
        // A dropped permit and an uncommitted slot give their slot back.
        let first = block_on(brx.recv()).unwrap().unwrap();
        drop(first);
        drop(atx.reserve().now_or_never().unwrap().unwrap());
        let slot = atx.reserve().now_or_never().unwrap().unwrap().alloc(3).unwrap();
        drop(slot);
        assert!(matches!(
            atx.reserve().now_or_never().unwrap().unwrap().alloc(9),
            Err(LinkError::TooLarge { len: 9, max: 8 })
        ));
        send(&atx, b"3").unwrap();
        assert_eq!(block_on(brx.recv()).unwrap().unwrap().as_bytes(), b"2");
        assert_eq!(block_on(brx.recv()).unwrap().unwrap().as_bytes(), b"3");
    }

    // r[verify memlink.faults]
    #[cfg(feature = "alloc")]
    #[test]
    fn faults_drop_corrupt_and_kill_by_payload_index() {
        let plan = FaultPlan { kill_after: Some(4), drop: Some(1), corrupt: Some(2), duplicate: Some(3) };
        let ((a, b), pair) =
            MemoryLinkPair::<CriticalSectionRawMutex, 8, 8>::new_shared_with_faults(plan, FaultPlan::NONE);
        let (atx, mut arx) = a.split();
        let (btx, mut brx) = b.split();
        for i in 0u8..4 {
            send(&atx, &[i, 0xAA]).unwrap();
        }
        send(&atx, &[4]).unwrap(); // index 4: the link dies here
        assert_eq!(send(&atx, &[5]), Err(LinkError::Reset));
        assert_eq!(send(&btx, &[9]), Err(LinkError::Reset), "kill takes both directions");
        let mut got = std::vec::Vec::new();
        let err = loop {
            match block_on(brx.recv()) {
                Ok(Some(p)) => got.push(p.as_bytes().to_vec()),
                Ok(None) => panic!("end-of-stream instead of an error"),
                Err(e) => break e,
            }
        };
        assert_eq!(err, LinkError::Reset);
        assert_eq!(got, [std::vec![0, 0xAA], std::vec![!2, 0xAA], std::vec![3, 0xAA], std::vec![3, 0xAA]]);
        assert_eq!(block_on(brx.recv()), Err(LinkError::Reset), "stays dead");
        assert_eq!(block_on(arx.recv()), Err(LinkError::Reset));
        assert_eq!(pair.slots_in_use(), 0);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn manual_kill_and_dropped_receiver_fail_the_sender() {
        let ((a, b), pair) =
            MemoryLinkPair::<CriticalSectionRawMutex, 2, 8>::new_shared_with_faults(FaultPlan::NONE, FaultPlan::NONE);
        let (atx, arx) = a.split();
        let (btx, mut brx) = b.split();
        drop(arx);
        assert_eq!(send(&btx, b"x"), Err(LinkError::Closed));
        pair.kill();
        assert_eq!(send(&atx, b"x"), Err(LinkError::Reset));
        assert_eq!(block_on(brx.recv()), Err(LinkError::Reset));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn graceful_close_drains_then_ends_for_good() {
        let (a, b) = Pair::new_shared();
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        send(&atx, b"last").unwrap();
        block_on(atx.close()).unwrap();
        assert_eq!(block_on(brx.recv()).unwrap().unwrap().as_bytes(), b"last");
        assert!(block_on(brx.recv()).unwrap().is_none());
        assert!(block_on(brx.recv()).unwrap().is_none());
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn backing_outlives_every_handle() {
        let (a, b) = Pair::new_shared();
        let (atx, arx) = a.split();
        let (btx, mut brx) = b.split();
        send(&atx, b"keep").unwrap();
        let kept = block_on(brx.recv()).unwrap().unwrap();
        drop((atx, arx, btx, brx));
        // The Arc strong count held by the backing keeps the storage alive.
        assert_eq!(kept.as_bytes(), b"keep");
    }
}
