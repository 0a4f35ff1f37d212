//! `QueueLink`: the Tx/Rx halves, permit and slot shared by every link whose
//! directions are [`SlotQueue`]s (the memory link, the framed link).

use super::slot_queue::SlotQueue;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};
use embassy_sync::blocking_mutex::raw::RawMutex;
use vox_types::{Backing, Link, LinkError, LinkRx, LinkTx, LinkTxPermit, MaybeSend, MaybeSync, WriteSlot};
use vox_types::{LendsSlots, StorageRef};

/// What a commit does; anything but `Deliver` is a fault being injected.
pub(crate) enum CommitAction {
    Deliver,
    Corrupt,
    Drop,
    Kill,
    Duplicate,
}

/// Storage holding the slot queues of a link, indexed by direction (0 or 1).
pub(crate) trait QueueStorage<M: RawMutex, const SLOTS: usize, const MTU: usize>: LendsSlots {
    /// The queue of direction `dir`.
    fn queue(&self, dir: usize) -> &SlotQueue<M, SLOTS, MTU>;

    /// Decides the fate of the next payload committed in direction `dir`.
    fn commit_action(&self, _dir: usize) -> CommitAction {
        CommitAction::Deliver
    }

    /// Kills the link in both directions.
    fn kill(&self);

    /// A Tx or Rx half was dropped (storages that count live handles).
    fn half_dropped(&self) {}

    /// A `reserve` on direction `dir` started waiting while every slot of
    /// the other direction was taken (storages that count it).
    fn stalled_reserve(&self, _dir: usize) {}
}

/// Release token of a lent slot: `slot index * 2 + direction`.
pub(crate) fn lend_token(idx: usize, dir: usize) -> usize {
    idx * 2 + dir
}

/// Splits a [`lend_token`] into (direction, slot index).
pub(crate) fn split_token(token: usize) -> (usize, usize) {
    (token % 2, token / 2)
}

/// `QueueStorage` methods a half needs in `Drop`, captured where
/// `P: QueueStorage` is known, so the `Drop` impls need no bound on `P`.
struct QueueOps<P, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    queue: for<'a> fn(&'a P, usize) -> &'a SlotQueue<M, SLOTS, MTU>,
    half_dropped: fn(&P),
}

/// The direction a link end receives on, given the one it sends on (a
/// link's two directions are 0 and 1).
fn other(dir: usize) -> usize {
    1 - (dir & 1)
}

impl<P, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Clone for QueueOps<P, M, SLOTS, MTU> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Copy for QueueOps<P, M, SLOTS, MTU> {}

/// One end of a slot-queue link: a Tx half and an Rx half.
pub struct QueueLink<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    tx: QueueTx<P, M, SLOTS, MTU>,
    rx: QueueRx<P, M, SLOTS, MTU>,
}

impl<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> QueueLink<P, M, SLOTS, MTU> {
    pub(crate) fn new(storage: StorageRef<P>, tx_dir: usize, rx_dir: usize) -> Self
    where
        P: QueueStorage<M, SLOTS, MTU>,
    {
        // One `static` per storage type: a half keeps a pointer to it.
        let ops: &'static QueueOps<P, M, SLOTS, MTU> =
            const { &QueueOps { queue: P::queue, half_dropped: P::half_dropped } };
        Self {
            tx: QueueTx { storage: storage.clone(), dir: tx_dir as u8, ops, stall_counted: AtomicBool::new(false) },
            rx: QueueRx { storage, dir: rx_dir as u8, ops },
        }
    }
}

/// Sending half of a slot-queue link. [`close`](LinkTx::close) ends the
/// direction gracefully (the peer sees end-of-stream); dropping it without
/// closing abandons the direction (the peer sees [`LinkError::Closed`]
/// after the payloads already committed; a framed link sends no
/// end-of-stream marker, so a peer's next link on the same byte stream is
/// not disturbed).
pub struct QueueTx<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    storage: StorageRef<P>,
    /// The direction sent on, 0 or 1.
    dir: u8,
    ops: &'static QueueOps<P, M, SLOTS, MTU>,
    /// The current wait for a slot was counted as a possible stall: a
    /// wait is counted once however often (and by however many
    /// reservations, such as a probe then an awaited one) it is polled.
    stall_counted: AtomicBool,
}

/// Receiving half of a slot-queue link; dropping it makes the peer's sends
/// fail with [`LinkError::Closed`].
pub struct QueueRx<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    storage: StorageRef<P>,
    /// The direction received on, 0 or 1.
    dir: u8,
    ops: &'static QueueOps<P, M, SLOTS, MTU>,
}

/// Permit for one payload; dropping it returns the slot.
pub struct QueuePermit<'a, P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    tx: &'a QueueTx<P, M, SLOTS, MTU>,
    idx: usize,
}

/// A payload being written in place; dropped uncommitted it returns the slot.
pub struct QueueSlot<'a, P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    tx: &'a QueueTx<P, M, SLOTS, MTU>,
    idx: usize,
    len: usize,
}

impl<P, M, const SLOTS: usize, const MTU: usize> Link for QueueLink<P, M, SLOTS, MTU>
where
    P: QueueStorage<M, SLOTS, MTU> + MaybeSend + MaybeSync,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
{
    type Tx = QueueTx<P, M, SLOTS, MTU>;
    type Rx = QueueRx<P, M, SLOTS, MTU>;

    // r[impl link.split]
    fn split(self) -> (Self::Tx, Self::Rx) {
        (self.tx, self.rx)
    }
}

impl<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> QueueTx<P, M, SLOTS, MTU> {
    fn queue(&self) -> &SlotQueue<M, SLOTS, MTU> {
        (self.ops.queue)(&self.storage, usize::from(self.dir))
    }
}

impl<P: QueueStorage<M, SLOTS, MTU> + 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize>
    QueueTx<P, M, SLOTS, MTU>
{
    /// Counts a wait in `reserve` while this end's receive slots are all
    /// taken. Out of line: the wait is the rare path.
    #[inline(never)]
    /// Counts a wait while this end's receive slots are all taken;
    /// whether it counted.
    fn note_stalled_wait(&self) -> bool {
        let full = (self.ops.queue)(&self.storage, other(usize::from(self.dir))).is_full();
        if full {
            self.storage.stalled_reserve(usize::from(self.dir));
        }
        full
    }
}

impl<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> QueueRx<P, M, SLOTS, MTU> {
    fn queue(&self) -> &SlotQueue<M, SLOTS, MTU> {
        (self.ops.queue)(&self.storage, usize::from(self.dir))
    }
}

impl<P, M, const SLOTS: usize, const MTU: usize> LinkTx for QueueTx<P, M, SLOTS, MTU>
where
    P: QueueStorage<M, SLOTS, MTU> + MaybeSend + MaybeSync,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
{
    type Permit<'a> = QueuePermit<'a, P, M, SLOTS, MTU>;

    // r[impl link.reserve]
    // r[impl link.reserve.cancel]
    fn reserve(&self) -> impl Future<Output = Result<Self::Permit<'_>, LinkError>> + MaybeSend + '_ {
        // Only the final, ready poll takes a slot, so dropping this future
        // while pending reserves nothing. A `poll_fn`, not an `async fn`
        // (which would keep `self` twice).
        poll_fn(move |cx| {
            let reserved = self.queue().poll_reserve(cx);
            // Waiting to send while this end's own receive slots are all
            // taken: if this task is also the one that reads, it waits
            // for itself (the bare conduit's one-task stall). Counted
            // per wait, by storages that count it.
            // r[impl bare.stall-bound]
            match reserved {
                Poll::Pending => {
                    if !self.stall_counted.load(Ordering::Relaxed) && self.note_stalled_wait() {
                        self.stall_counted.store(true, Ordering::Relaxed);
                    }
                }
                Poll::Ready(_) => self.stall_counted.store(false, Ordering::Relaxed),
            }
            reserved.map(|r| r.map(|idx| QueuePermit { tx: self, idx }))
        })
    }

    fn max_payload(&self) -> usize {
        MTU
    }

    // r[impl link.close]
    async fn close(self) -> Result<(), LinkError> {
        self.queue().close();
        Ok(())
    }
}

impl<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop for QueueTx<P, M, SLOTS, MTU> {
    fn drop(&mut self) {
        self.queue().abandon();
        (self.ops.half_dropped)(&self.storage);
    }
}

impl<'a, P, M, const SLOTS: usize, const MTU: usize> LinkTxPermit for QueuePermit<'a, P, M, SLOTS, MTU>
where
    P: QueueStorage<M, SLOTS, MTU> + MaybeSend + MaybeSync,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
{
    type Slot = QueueSlot<'a, P, M, SLOTS, MTU>;

    // r[impl link.alloc.len]
    fn alloc(self, len: usize) -> Result<Self::Slot, LinkError> {
        if len > MTU {
            // `self` drops here and returns the slot.
            return Err(LinkError::TooLarge { len, max: MTU });
        }
        let this = core::mem::ManuallyDrop::new(self);
        Ok(QueueSlot { tx: this.tx, idx: this.idx, len })
    }
}

// r[impl link.permit.drop]
impl<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop
    for QueuePermit<'_, P, M, SLOTS, MTU>
{
    fn drop(&mut self) {
        self.tx.queue().cancel(self.idx);
    }
}

impl<P, M, const SLOTS: usize, const MTU: usize> WriteSlot for QueueSlot<'_, P, M, SLOTS, MTU>
where
    P: QueueStorage<M, SLOTS, MTU>,
    M: RawMutex + 'static,
{
    fn as_mut_slice(&mut self) -> &mut [u8] {
        let ptr = self.tx.queue().slot_ptr(self.idx);
        // SAFETY: the slot is Reserved to this `QueueSlot` alone until it is
        // committed or dropped, and `len <= MTU` was checked in `alloc`.
        unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), self.len) }
    }

    // r[impl link.commit]
    fn commit(mut self) {
        let (tx, idx, len) = (self.tx, self.idx, self.len);
        match tx.storage.commit_action(usize::from(tx.dir)) {
            CommitAction::Deliver => tx.queue().commit(idx, len),
            CommitAction::Corrupt => {
                if let Some(b) = self.as_mut_slice().first_mut() {
                    *b = !*b;
                }
                tx.queue().commit(idx, len);
            }
            CommitAction::Drop => tx.queue().cancel(idx),
            CommitAction::Duplicate => tx.queue().commit_twice(idx, len),
            CommitAction::Kill => {
                tx.queue().cancel(idx);
                tx.storage.kill();
            }
        }
        core::mem::forget(self);
    }
}

impl<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop for QueueSlot<'_, P, M, SLOTS, MTU> {
    fn drop(&mut self) {
        self.tx.queue().cancel(self.idx);
    }
}

impl<P, M, const SLOTS: usize, const MTU: usize> LinkRx for QueueRx<P, M, SLOTS, MTU>
where
    P: QueueStorage<M, SLOTS, MTU> + MaybeSend + MaybeSync,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
{
    // r[impl link.rx.eof]
    // r[impl link.rx.error]
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Backing>, LinkError>> {
        let queue = self.queue();
        queue.poll_recv(cx).map(|got| {
            Ok(got?.map(|(idx, len)| {
                let ptr = queue.slot_ptr(idx);
                // SAFETY: the slot is Lent: nobody writes it until
                // `release_slot(lend_token(..))` returns it to the queue.
                unsafe { self.storage.lend(ptr, len, lend_token(idx, usize::from(self.dir))) }
            }))
        })
    }

    fn poll_recv_in_place<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Poll<Result<Option<R>, LinkError>> {
        let queue = self.queue();
        queue.poll_recv(cx).map(|got| {
            Ok(got?.map(|(idx, len)| {
                // Returned to the queue when `f` is done, also if it unwinds.
                let lent = queue.lent(idx);
                // SAFETY: the slot is Lent, holding `len <= MTU` committed
                // bytes: nobody writes it until `lent` releases it, after
                // `f`'s last use of the slice (which `f` cannot keep: its
                // lifetime ends with this call).
                let bytes = unsafe { core::slice::from_raw_parts(queue.slot_ptr(lent.idx()).as_ptr(), len) };
                f(bytes)
            }))
        })
    }
}

impl<P: 'static, M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Drop for QueueRx<P, M, SLOTS, MTU> {
    fn drop(&mut self) {
        self.queue().drop_consumer();
        (self.ops.half_dropped)(&self.storage);
    }
}
