//! `WriterQueue`: the tasks waiting in `reserve`, oldest first, each woken
//! alone when room frees. No allocation and no bound on their number: each
//! waiting `reserve` future holds its own place ([`WriterPlace`]), linked
//! into the queue while it waits. Every operation runs under the storage's
//! lock.
//!
//! Written here rather than taken from a crate (maitake-sync's `WaitQueue`
//! does this with its own lock-free state and atomics, which a Cortex-M0
//! lacks): the storage's lock already serialises every access, so a plain
//! doubly linked list of places is all it takes.

use core::marker::PhantomPinned;
use core::ptr;
use core::task::Waker;

/// Where a waiting `reserve` future is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaceState {
    /// Not in the queue, and not woken by it (a first poll, or done).
    Out,
    /// In the queue, waiting its turn.
    Queued,
    /// Taken off the queue and woken: its turn came, and it has not
    /// polled yet. If it is dropped now it passes the turn on.
    Woken,
}

/// A waiting `reserve` future's place: lives in the future, which is
/// `!Unpin` and never moves once polled.
pub(crate) struct WriterPlace {
    waker: Option<Waker>,
    prev: *mut WriterPlace,
    next: *mut WriterPlace,
    state: PlaceState,
    _pinned: PhantomPinned,
}

// SAFETY: the raw pointers are links of a `WriterQueue`, read and written
// only under the storage's lock (see `WriterQueue`); the place itself
// holds only a `Waker`, which is `Send` and `Sync`.
unsafe impl Send for WriterPlace {}
// SAFETY: as for `Send`: every access goes through the storage's lock.
unsafe impl Sync for WriterPlace {}

impl WriterPlace {
    /// A place out of any queue.
    pub(crate) const fn new() -> Self {
        Self {
            waker: None,
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            state: PlaceState::Out,
            _pinned: PhantomPinned,
        }
    }
}

/// The queue: head and tail of the places linked into it, and how many
/// were woken and have not polled yet (their turn is still theirs).
pub(crate) struct WriterQueue {
    head: *mut WriterPlace,
    tail: *mut WriterPlace,
    woken: u32,
}

// SAFETY: the queue lives in the storage and is used only under its lock;
// the places it points to stay valid while linked (a place unlinks itself
// under that lock before its future is dropped).
unsafe impl Send for WriterQueue {}
// SAFETY: as for `Send`.
unsafe impl Sync for WriterQueue {}

impl WriterQueue {
    /// An empty queue (all zero bits: storage in a `static` stays in
    /// `.bss`).
    pub(crate) const fn new() -> Self {
        Self { head: ptr::null_mut(), tail: ptr::null_mut(), woken: 0 }
    }

    /// Whether no one is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Whether a newcomer must queue: someone is queued, or woken and
    /// about to take its turn.
    pub(crate) fn has_waiters(&self) -> bool {
        !self.head.is_null() || self.woken > 0
    }

    /// `place`, woken, polls (or is dropped): its turn is taken now.
    ///
    /// # Safety
    /// As for [`state`](Self::state).
    pub(crate) unsafe fn take_turn(&mut self, place: *mut WriterPlace) {
        // SAFETY: the caller's contract.
        unsafe {
            if (*place).state == PlaceState::Woken {
                (*place).state = PlaceState::Out;
                self.woken = self.woken.saturating_sub(1);
            }
        }
    }

    /// The state of `place`.
    ///
    /// # Safety
    /// `place` is valid, and the caller holds the storage's lock.
    pub(crate) unsafe fn state(place: *mut WriterPlace) -> PlaceState {
        // SAFETY: the caller's contract.
        unsafe { (*place).state }
    }

    /// Keeps `waker` as the one to wake for `place`.
    ///
    /// # Safety
    /// As for [`state`](Self::state).
    pub(crate) unsafe fn set_waker(place: *mut WriterPlace, waker: &Waker) {
        // SAFETY: the caller's contract.
        let slot = unsafe { &mut (*place).waker };
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Links `place` last (a newcomer) or first (`front`: its turn came
    /// but the room had gone again), to be woken with `waker`.
    ///
    /// # Safety
    /// `place` is valid, pinned, not linked, and stays valid until it is
    /// unlinked ([`remove`](Self::remove), or woken); the caller holds the
    /// storage's lock.
    pub(crate) unsafe fn push(&mut self, place: *mut WriterPlace, waker: &Waker, front: bool) {
        // SAFETY: the caller's contract: `place` and every linked place are
        // valid, and no one else touches them while the lock is held.
        unsafe {
            Self::set_waker(place, waker);
            (*place).state = PlaceState::Queued;
            if front {
                (*place).prev = ptr::null_mut();
                (*place).next = self.head;
                match self.head.is_null() {
                    true => self.tail = place,
                    false => (*self.head).prev = place,
                }
                self.head = place;
            } else {
                (*place).next = ptr::null_mut();
                (*place).prev = self.tail;
                match self.tail.is_null() {
                    true => self.head = place,
                    false => (*self.tail).next = place,
                }
                self.tail = place;
            }
        }
    }

    /// Unlinks `place` if it is queued (its future is dropped while
    /// waiting).
    ///
    /// # Safety
    /// As for [`push`](Self::push), except that `place` may be linked.
    pub(crate) unsafe fn remove(&mut self, place: *mut WriterPlace) {
        // SAFETY: the caller's contract.
        unsafe {
            if (*place).state != PlaceState::Queued {
                return;
            }
            let (prev, next) = ((*place).prev, (*place).next);
            match prev.is_null() {
                true => self.head = next,
                false => (*prev).next = next,
            }
            match next.is_null() {
                true => self.tail = prev,
                false => (*next).prev = prev,
            }
            (*place).prev = ptr::null_mut();
            (*place).next = ptr::null_mut();
            (*place).state = PlaceState::Out;
        }
    }

    /// Wakes the oldest waiter, taking it off the queue.
    /// A woken writer left without taking its turn and could not say so
    /// itself (it was dropped inside the lock): the turn goes to the next
    /// one.
    pub(crate) fn pass_turn_on(&mut self) {
        self.woken = self.woken.saturating_sub(1);
        self.wake_one();
    }

    pub(crate) fn wake_one(&mut self) {
        let place = self.head;
        if place.is_null() {
            return;
        }
        // SAFETY: a linked place is valid (see `push`), and the caller of
        // every method holds the storage's lock.
        let waker = unsafe {
            self.remove(place);
            (*place).state = PlaceState::Woken;
            (*place).waker.take()
        };
        self.woken = self.woken.saturating_add(1);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::vec::Vec;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn waiters_are_woken_one_at_a_time_oldest_first_and_a_dropped_one_leaves_no_trace() {
        let mut queue = WriterQueue::new();
        let mut places: Vec<Box<WriterPlace>> = (0..4).map(|_| Box::new(WriterPlace::new())).collect();
        let ptrs: Vec<*mut WriterPlace> = places.iter_mut().map(|p| &mut **p as *mut WriterPlace).collect();
        let wakers: Vec<_> = (0..4).map(|_| counter()).collect();
        for (i, place) in ptrs.iter().enumerate() {
            // SAFETY: boxed places outlive the queue's use of them.
            unsafe { queue.push(*place, &wakers[i].1, false) };
        }
        // The second leaves (its future is dropped while it waits).
        // SAFETY: as above.
        unsafe { queue.remove(ptrs[1]) };
        // SAFETY: as above.
        let state = unsafe { WriterQueue::state(ptrs[1]) };
        assert_eq!(state, PlaceState::Out);
        queue.wake_one();
        assert_eq!(wakers[0].0.0.load(Ordering::Relaxed), 1, "the oldest first");
        // SAFETY: as above.
        let state = unsafe { WriterQueue::state(ptrs[0]) };
        assert_eq!(state, PlaceState::Woken);
        assert!(wakers[2..].iter().all(|(c, _)| c.0.load(Ordering::Relaxed) == 0), "alone");
        assert!(queue.has_waiters(), "a woken place still holds its turn");
        // Its turn came but the room went: back to the front.
        // SAFETY: as above.
        unsafe {
            queue.take_turn(ptrs[0]);
            queue.push(ptrs[0], &wakers[0].1, true);
        }
        queue.wake_one();
        assert_eq!(wakers[0].0.0.load(Ordering::Relaxed), 2, "the front again");
        queue.wake_one();
        queue.wake_one();
        assert_eq!(wakers[1].0.0.load(Ordering::Relaxed), 0, "the one that left is not woken");
        assert_eq!(wakers[2].0.0.load(Ordering::Relaxed), 1);
        assert_eq!(wakers[3].0.0.load(Ordering::Relaxed), 1);
        assert!(queue.is_empty());
        // Removing a place that is not queued changes nothing.
        // SAFETY: as above.
        unsafe { queue.remove(ptrs[3]) };
        assert!(queue.is_empty());
        drop(places);
    }
}
