//! `FramedLinkStorage`: the payload slots, statistics and liveness of a
//! framed link, in a `static` or behind an `Arc`.

use super::{FramedLink, FramedRunner, FramedStats};
use crate::queue::queue_link::{QueueLink, QueueStorage, split_token};
use crate::queue::slot_queue::SlotQueue;
use core::cell::Cell;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use vox_types::LinkError;
use vox_types::{LendsSlots, StorageRef};

/// Direction of the queue the application sends on (app → runner).
pub(super) const TX: usize = 0;
/// Direction of the queue the application receives on (runner → app).
pub(super) const RX: usize = 1;

/// Storage of a framed link: `SLOTS` payload slots of `MTU` bytes each way,
/// and the statistics. Put it in a `static` (no allocator) or use
/// [`FramedLinkStorage::new_shared`]. 1 to 255 slots of at most 4 GiB
/// each (refused at compile time otherwise). With feature `fast-codec`
/// (hosts) the runner's read and encode buffers are one slot's size each:
/// its future holds `2 × MTU` bytes, and [`FramedRunner::run`] does not
/// compile for an `MTU` below 2.
// r[impl framed.io]
pub struct FramedLinkStorage<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> {
    queues: [SlotQueue<M, SLOTS, MTU>; 2],
    stats: Mutex<M, Cell<FramedStats>>,
    /// Live halves and runner of the attached link.
    live: Mutex<M, Cell<u8>>,
    /// `FramedStats::stalled_reserves`, apart: counted by the link's
    /// sending half, without copying the whole statistics.
    stalled_reserves: Mutex<M, Cell<u32>>,
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> FramedLinkStorage<M, SLOTS, MTU> {
    /// Empty storage, usable in a `static`.
    pub const fn new() -> Self {
        Self {
            queues: [SlotQueue::new(), SlotQueue::new()],
            stats: Mutex::new(Cell::new(FramedStats {
                frames_sent: 0,
                payload_bytes_sent: 0,
                wire_bytes_sent: 0,
                frames_received: 0,
                payload_bytes_received: 0,
                wire_bytes_received: 0,
                crc_errors: 0,
                oversize_frames: 0,
                malformed_frames: 0,
                resyncs: 0,
                discarded_bytes: 0,
                stalled_reserves: 0,
            })),
            live: Mutex::new(Cell::new(0)),
            stalled_reserves: Mutex::new(Cell::new(0)),
        }
    }

    /// Attaches a new link to static storage, or `None` while the previous
    /// link's halves, runner or received payloads are still alive.
    ///
    /// Statistics keep counting across attachments.
    pub fn attach(&'static self) -> Option<(FramedLink<M, SLOTS, MTU>, FramedRunner<M, SLOTS, MTU>)> {
        Self::attach_in(self)
    }

    /// [`attach`](Self::attach) for storage in a `static` or an `Arc`:
    /// the same storage serves link after link, wherever it lives (one
    /// `Arc` per device lets many devices share a process).
    ///
    /// ```
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use vox_link_embedded::FramedLinkStorage;
    ///
    /// // Or `Arc::new(FramedLinkStorage::new())` (feature `alloc`).
    /// static STORAGE: FramedLinkStorage<CriticalSectionRawMutex, 2, 64> = FramedLinkStorage::new();
    /// let (link, runner) = FramedLinkStorage::attach_in(&STORAGE).unwrap();
    /// assert!(FramedLinkStorage::attach_in(&STORAGE).is_none(), "one link at a time");
    /// drop((link, runner));
    /// assert!(FramedLinkStorage::attach_in(&STORAGE).is_some(), "then the next");
    /// ```
    pub fn attach_in(
        storage: impl Into<StorageRef<Self>>,
    ) -> Option<(FramedLink<M, SLOTS, MTU>, FramedRunner<M, SLOTS, MTU>)> {
        let storage = storage.into();
        storage.try_reopen().then(|| Self::ends(storage))
    }

    /// Bytes read from the stream since the storage was created: one
    /// counter, cheaper than [`stats`](Self::stats) where only it is
    /// needed (a port's check that a link read anything).
    pub(crate) fn wire_bytes_received(&self) -> u64 {
        self.stats.lock(|s| s.get().wire_bytes_received)
    }

    /// Counters since the storage was created.
    pub fn stats(&self) -> FramedStats {
        let stalled_reserves = self.stalled_reserves.lock(Cell::get);
        FramedStats { stalled_reserves, ..self.stats.lock(Cell::get) }
    }

    fn try_reopen(&self) -> bool {
        // One lock around the check and the claim: two attaches at once
        // cannot both find the storage idle.
        self.live.lock(|l| {
            let idle = l.get() == 0 && self.queues.iter().all(SlotQueue::reopen);
            if idle {
                l.set(3);
            }
            idle
        })
    }

    fn ends(storage: StorageRef<Self>) -> (FramedLink<M, SLOTS, MTU>, FramedRunner<M, SLOTS, MTU>) {
        (FramedLink(QueueLink::new(storage.clone(), TX, RX)), FramedRunner::new(storage))
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut FramedStats)) {
        self.stats.lock(|c| {
            let mut s = c.get();
            f(&mut s);
            c.set(s);
        });
    }

    pub(super) fn kill_with(&self, e: LinkError) {
        for q in &self.queues {
            q.kill(e);
        }
    }
}

#[cfg(feature = "alloc")]
impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> FramedLinkStorage<M, SLOTS, MTU> {
    /// A link on fresh heap storage, and its runner.
    pub fn new_shared() -> (FramedLink<M, SLOTS, MTU>, FramedRunner<M, SLOTS, MTU>) {
        let storage = alloc::sync::Arc::new(Self::new());
        storage.live.lock(|l| l.set(3));
        Self::ends(StorageRef::Shared(storage))
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> Default for FramedLinkStorage<M, SLOTS, MTU> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> LendsSlots for FramedLinkStorage<M, SLOTS, MTU> {
    unsafe fn release_slot(&self, token: usize) {
        let (dir, idx) = split_token(token);
        self.queue(dir).release(idx);
    }
}

impl<M: RawMutex + 'static, const SLOTS: usize, const MTU: usize> QueueStorage<M, SLOTS, MTU>
    for FramedLinkStorage<M, SLOTS, MTU>
{
    fn queue(&self, dir: usize) -> &SlotQueue<M, SLOTS, MTU> {
        let [tx, rx] = &self.queues;
        if dir == TX { tx } else { rx }
    }

    fn kill(&self) {
        self.kill_with(LinkError::Reset);
    }

    fn half_dropped(&self) {
        self.live.lock(|l| l.set(l.get().saturating_sub(1)));
    }

    fn stalled_reserve(&self, _dir: usize) {
        self.stalled_reserves.lock(|n| n.set(n.get().saturating_add(1)));
    }
}
