//! `SlotQueue`: a bounded queue of fixed-size payload slots, written in place
//! by one side and lent, without a copy, to the other.
//!
//! A slot moves Free → Reserved (producer's permit) → Queued (committed) →
//! Lent (consumer's backing) → Free. The state machine lives under a
//! blocking mutex; slot bytes are touched only by whoever the state says
//! owns the slot, which is what makes the `UnsafeCell`s sound.

use core::cell::{RefCell, UnsafeCell};
use core::ptr::NonNull;
use core::task::{Context, Poll};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;
use vox_types::LinkError;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SlotState {
    Free,
    Reserved,
    Queued,
    Lent,
}

// An explicit tag makes `Open` all zero bytes (a niche would not): a
// queue in a `static` then lands in `.bss`, not in flash-backed `.data`.
// A word, not a byte: the error after it is moved with word loads and
// stores rather than a byte-wise copy (smaller firmware).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
enum End {
    Open,
    /// The producer closed gracefully: drain, then end-of-stream.
    Closed,
    /// The link died: drain what was committed, then this error.
    Dead(LinkError),
}

/// `repr(C)`, in this order: the bytes read on every operation first, at
/// offsets Thumb's 16-bit loads reach (smaller firmware).
#[repr(C)]
struct State<const SLOTS: usize> {
    consumer_gone: bool,
    /// Where the oldest of `ready` is...
    ready_head: u8,
    /// ...and how many there are.
    ready_len: u8,
    slots: [SlotState; SLOTS],
    /// Committed slots in commit order: a ring of slot indices (at most
    /// 255 slots, checked).
    ready: [u8; SLOTS],
    end: End,
    /// The committed length of each queued slot.
    lens: [u32; SLOTS],
    producer: WakerRegistration,
    consumer: WakerRegistration,
}

impl<const SLOTS: usize> State<SLOTS> {
    /// Queues committed slot `idx` of `len` bytes; `false` if the ring is
    /// full (never: a slot is queued at most once).
    fn push_ready(&mut self, idx: usize, len: usize) -> bool {
        let at = (usize::from(self.ready_head) + usize::from(self.ready_len)) % SLOTS;
        let (Some(slot), Some(l)) = (self.ready.get_mut(at), self.lens.get_mut(idx)) else { return false };
        if usize::from(self.ready_len) == SLOTS {
            return false;
        }
        *slot = idx as u8;
        *l = len as u32;
        self.ready_len += 1;
        true
    }

    /// The oldest committed slot: (index, length).
    fn pop_ready(&mut self) -> Option<(usize, usize)> {
        if self.ready_len == 0 {
            return None;
        }
        let idx = usize::from(*self.ready.get(usize::from(self.ready_head))?);
        self.ready_head = ((usize::from(self.ready_head) + 1) % SLOTS) as u8;
        self.ready_len -= 1;
        Some((idx, *self.lens.get(idx)? as usize))
    }

    fn set(&mut self, idx: usize, to: SlotState) {
        if let Some(s) = self.slots.get_mut(idx) {
            *s = to;
        }
    }

    fn free(&mut self, idx: usize) {
        self.set(idx, SlotState::Free);
        self.producer.wake();
    }
}

/// Bounded queue of `SLOTS` payload slots of `MTU` bytes each.
pub(crate) struct SlotQueue<M: RawMutex, const SLOTS: usize, const MTU: usize> {
    bufs: [UnsafeCell<[u8; MTU]>; SLOTS],
    state: Mutex<M, RefCell<State<SLOTS>>>,
}

// SAFETY: slot bytes are accessed only by the holder of the slot's state
// (Reserved: one producer writes; Queued/Lent: the consumer reads), and the
// state is protected by the `M` mutex, which is `Sync` when `M` is.
// r[impl types.selfref.miri]
unsafe impl<M: RawMutex + Sync, const SLOTS: usize, const MTU: usize> Sync for SlotQueue<M, SLOTS, MTU> {}

impl<M: RawMutex, const SLOTS: usize, const MTU: usize> SlotQueue<M, SLOTS, MTU> {
    const SIZES_FIT: () =
        assert!(SLOTS >= 1 && SLOTS <= 255 && MTU <= u32::MAX as usize, "1 to 255 slots of at most 4 GiB each");

    pub(crate) const fn new() -> Self {
        let () = Self::SIZES_FIT;
        Self {
            bufs: [const { UnsafeCell::new([0; MTU]) }; SLOTS],
            state: Mutex::new(RefCell::new(State {
                slots: [SlotState::Free; SLOTS],
                ready: [0; SLOTS],
                ready_head: 0,
                ready_len: 0,
                lens: [0; SLOTS],
                end: End::Open,
                consumer_gone: false,
                producer: WakerRegistration::new(),
                consumer: WakerRegistration::new(),
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State<SLOTS>) -> R) -> R {
        self.state.lock(|s| f(&mut s.borrow_mut()))
    }

    /// Reserves a free slot, or registers to be woken when one frees up.
    pub(crate) fn poll_reserve(&self, cx: &mut Context<'_>) -> Poll<Result<usize, LinkError>> {
        self.with(|s| {
            if s.consumer_gone {
                return Poll::Ready(Err(LinkError::Closed));
            }
            match s.end {
                End::Dead(e) => return Poll::Ready(Err(e)),
                End::Closed => return Poll::Ready(Err(LinkError::Closed)),
                End::Open => {}
            }
            match s.slots.iter().position(|&x| x == SlotState::Free) {
                Some(idx) => {
                    s.set(idx, SlotState::Reserved);
                    Poll::Ready(Ok(idx))
                }
                None => {
                    s.producer.register(cx.waker());
                    Poll::Pending
                }
            }
        })
    }

    /// Returns a reserved slot unpublished.
    pub(crate) fn cancel(&self, idx: usize) {
        self.with(|s| s.free(idx));
    }

    /// Start of slot `idx`'s bytes. Valid for `MTU` bytes while the queue lives.
    pub(crate) fn slot_ptr(&self, idx: usize) -> NonNull<u8> {
        let cell = self.bufs.get(idx).unwrap_or_else(|| unreachable_slot(idx));
        // SAFETY: `UnsafeCell::get` never returns null.
        unsafe { NonNull::new_unchecked(cell.get().cast::<u8>()) }
    }

    /// Publishes `len` bytes of reserved slot `idx`: one slot is one
    /// payload (any length, zero included), queued in commit order.
    // r[impl link.message]
    // r[impl link.order]
    // r[impl link.empty]
    pub(crate) fn commit(&self, idx: usize, len: usize) {
        self.with(|s| {
            let alive = s.end == End::Open && !s.consumer_gone;
            if alive && s.push_ready(idx, len) {
                s.set(idx, SlotState::Queued);
                s.consumer.wake();
            } else {
                s.free(idx);
            }
        })
    }

    /// Publishes slot `idx` and, if a slot is free, a copy of it right
    /// after (a duplicating line, for fault injection).
    pub(crate) fn commit_twice(&self, idx: usize, len: usize) {
        let spare = self.with(|s| {
            let spare = s.slots.iter().position(|&x| x == SlotState::Free)?;
            s.set(spare, SlotState::Reserved);
            Some(spare)
        });
        if let Some(copy) = spare {
            let (from, to) = (self.slot_ptr(idx), self.slot_ptr(copy));
            // SAFETY: both slots are Reserved to this caller (the original
            // by its `QueueSlot`, the copy just above), distinct, and
            // `len <= MTU`.
            unsafe { core::ptr::copy_nonoverlapping(from.as_ptr(), to.as_ptr(), len) };
        }
        self.commit(idx, len);
        if let Some(copy) = spare {
            self.commit(copy, len);
        }
    }

    /// The next committed slot (index, length), end-of-stream, or the
    /// link's death.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Option<(usize, usize)>, LinkError>> {
        self.with(|s| {
            if let Some((idx, len)) = s.pop_ready() {
                s.set(idx, SlotState::Lent);
                return Poll::Ready(Ok(Some((idx, len))));
            }
            match s.end {
                End::Closed => Poll::Ready(Ok(None)),
                End::Dead(e) => Poll::Ready(Err(e)),
                End::Open => {
                    s.consumer.register(cx.waker());
                    Poll::Pending
                }
            }
        })
    }

    /// Ready once [`poll_recv`](Self::poll_recv) would be (a committed
    /// slot, or the end); takes nothing.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.with(|s| {
            if s.ready_len > 0 || s.end != End::Open {
                Poll::Ready(())
            } else {
                s.consumer.register(cx.waker());
                Poll::Pending
            }
        })
    }

    /// Returns a lent slot.
    pub(crate) fn release(&self, idx: usize) {
        self.with(|s| s.free(idx));
    }

    /// Slot `idx`, lent to the caller, as a guard that returns it when
    /// dropped (also when the borrower unwinds or is cancelled).
    pub(crate) fn lent(&self, idx: usize) -> LentSlot<'_, M, SLOTS, MTU> {
        LentSlot { queue: self, idx }
    }

    /// Graceful end of the producer: the consumer drains, then sees
    /// end-of-stream.
    pub(crate) fn close(&self) {
        self.with(|s| {
            if s.end == End::Open {
                s.end = End::Closed;
            }
            s.consumer.wake();
        })
    }

    /// The producer went away without closing: the consumer drains what was
    /// committed, then gets [`LinkError::Closed`] (not end-of-stream).
    pub(crate) fn abandon(&self) {
        self.kill(LinkError::Closed);
    }

    /// The link died: the producer fails at once, the consumer after
    /// draining what was committed.
    pub(crate) fn kill(&self, e: LinkError) {
        self.with(|s| {
            if s.end == End::Open {
                s.end = End::Dead(e);
            }
            s.consumer.wake();
            s.producer.wake();
        })
    }

    /// The consumer went away: queued slots are discarded and the producer
    /// fails from now on.
    pub(crate) fn drop_consumer(&self) {
        self.with(|s| {
            s.consumer_gone = true;
            while let Some((idx, _)) = s.pop_ready() {
                s.set(idx, SlotState::Free);
            }
            s.producer.wake();
        })
    }

    /// Ready once the consumer is gone.
    pub(crate) fn poll_consumer_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.with(|s| {
            if s.consumer_gone {
                Poll::Ready(())
            } else {
                s.producer.register(cx.waker());
                Poll::Pending
            }
        })
    }

    /// Reopens an idle queue for a new link; fails if any slot is in use.
    pub(crate) fn reopen(&self) -> bool {
        self.with(|s| {
            if s.slots.iter().any(|&x| x != SlotState::Free) {
                return false;
            }
            (s.ready_head, s.ready_len) = (0, 0);
            s.end = End::Open;
            s.consumer_gone = false;
            true
        })
    }

    /// Whether every slot is taken (the consumer has not read or not yet
    /// released them all): a producer on the other direction of the same
    /// link that waits now may wait for its own reader.
    pub(crate) fn is_full(&self) -> bool {
        self.with(|s| s.slots.iter().all(|&x| x != SlotState::Free))
    }

    /// Number of slots not Free (reserved, queued or lent).
    pub(crate) fn slots_in_use(&self) -> usize {
        self.with(|s| s.slots.iter().filter(|&&x| x != SlotState::Free).count())
    }
}

#[cold]
fn unreachable_slot(idx: usize) -> ! {
    // Indices come only from `poll_reserve`/`poll_recv`, never from a peer.
    unreachable!("slot index {idx} out of range")
}

/// A lent slot, returned to its queue when dropped: see
/// [`SlotQueue::lent`].
pub(crate) struct LentSlot<'q, M: RawMutex, const SLOTS: usize, const MTU: usize> {
    queue: &'q SlotQueue<M, SLOTS, MTU>,
    idx: usize,
}

impl<M: RawMutex, const SLOTS: usize, const MTU: usize> LentSlot<'_, M, SLOTS, MTU> {
    /// The slot's index.
    pub(crate) fn idx(&self) -> usize {
        self.idx
    }
}

impl<M: RawMutex, const SLOTS: usize, const MTU: usize> Drop for LentSlot<'_, M, SLOTS, MTU> {
    fn drop(&mut self) {
        self.queue.release(self.idx);
    }
}
