//! `Reserve`: one writer's wait in a stable conduit's `reserve`, its place
//! in the storage's writer queue and its turn, and what dropping the
//! future gives back (the place, or a reservation a panicking wake left).
//!
//! Hosts (feature `std`): a wait with no place in the queue first takes
//! the reservation a send may have kept for it (see `early_permit`).

use crate::SendError;
use crate::stable_storage::{Locked, StableStore};
use crate::writer_queue::{PlaceState, WriterPlace, WriterQueue};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// One task's wait in `reserve`: its place in the storage's
/// [`WriterQueue`] while it waits.
pub(crate) struct Reserve<'a, S: StableStore> {
    storage: &'a S,
    place: WriterPlace,
    /// What dropping the future gives back.
    held: Held,
}

/// What a [`Reserve`] future holds in the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Nothing: never queued, or seen out of the queue by its last poll.
    Nothing,
    /// The queue may point to `place`: dropping the future unlinks it.
    Place,
    /// The reservation its poll took, until the poll returns it (after
    /// the lock's wakes): if a waker panics there, dropping the future
    /// ends the reservation, which nobody else would.
    Reservation,
}

impl<'a, S: StableStore> Reserve<'a, S> {
    /// A wait on `storage`'s writer queue, not yet queued.
    pub(crate) fn new(storage: &'a S) -> Self {
        Self { storage, place: WriterPlace::new(), held: Held::Nothing }
    }

    /// Hosts: takes the reservation a send took early, without the lock,
    /// if this wait holds no place in the queue (see the module's rules).
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn claim_early(&self) -> bool {
        self.held == Held::Nothing && self.storage.early_permit().claim()
    }
}

impl<S: StableStore> Future for Reserve<'_, S> {
    type Output = Result<(), SendError>;

    // Out of line on small targets: one copy however many places await
    // `reserve`.
    #[cfg_attr(not(feature = "std"), inline(never))]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of `self`; `place` stays where it
        // is until the future is dropped, which unlinks it first.
        let this = unsafe { self.get_unchecked_mut() };
        let place: *mut WriterPlace = &mut this.place;
        let held = &mut this.held;
        let storage = this.storage;
        let polled = storage.lock(|l| {
            // `Place` until the poll's outcome is known, which is before
            // the lock wakes anyone: if a waker panics (its clone here, or
            // its wake after), the drop still finds `place` if it is
            // queued. (Read by the drop when `poll_place` unwinds, which
            // the lint does not see.)
            #[allow(unused_assignments)]
            {
                *held = Held::Place;
            }
            let polled = poll_place(
                l,
                place,
                cx.waker(),
                #[cfg(feature = "std")]
                storage.early_permit(),
            );
            *held = match polled {
                Poll::Pending => Held::Place,
                Poll::Ready(Ok(())) => Held::Reservation,
                Poll::Ready(Err(_)) => Held::Nothing,
            };
            polled
        });
        // The wakes ran: the reservation goes to the caller's permit.
        if this.held == Held::Reservation {
            this.held = Held::Nothing;
        }
        polled
    }
}

/// One poll of a writer's wait, under the storage's lock: its turn, or its
/// place in the queue. Inlined on hosts (feature `std`, as the storage's
/// lock is): it runs once per message sent.
#[cfg_attr(feature = "std", inline)]
fn poll_place(
    l: &mut Locked<'_>,
    place: *mut WriterPlace,
    waker: &core::task::Waker,
    #[cfg(feature = "std")] early: &crate::early_permit::EarlyPermit,
) -> Poll<Result<(), SendError>> {
    // Hosts: a reservation changes nothing a release depends on.
    #[cfg(feature = "std")]
    l.data_path_only();
    let queue = &mut l.wakers.writers;
    // SAFETY: `place` is valid and pinned (above); the queue and
    // its places are only touched under this lock.
    unsafe {
        let state = WriterQueue::state(place);
        if state == PlaceState::Queued {
            // Not its turn yet.
            WriterQueue::set_waker(place, waker);
            return Poll::Pending;
        }
        let woken = state == PlaceState::Woken;
        queue.take_turn(place);
        if !woken && queue.has_waiters() {
            // Others wait already: behind them.
            queue.push(place, waker, false);
            l.session.note_writer_waiting();
            return Poll::Pending;
        }
        if let Some(e) = l.session.state.ended() {
            // The session ended: the next waiter learns it too.
            let ended = Poll::Ready(Err(SendError::Session(*e)));
            queue.wake_one();
            return ended;
        }
        // Hosts: a reservation a send took early is this writer's (no one
        // waits while one is offered).
        #[cfg(feature = "std")]
        let reserved = if early.claim() { Ok(true) } else { l.session.try_reserve() };
        #[cfg(not(feature = "std"))]
        let reserved = l.session.try_reserve();
        match reserved {
            Ok(true) => {
                if queue.has_waiters() {
                    // Others still wait (the self-stall count
                    // watches them).
                    l.session.note_writer_waiting();
                } else {
                    // No writer waits: no self-stall deadline.
                    l.timer_unchanged();
                }
                Poll::Ready(Ok(()))
            }
            // Its turn came but the room went again: it stays first.
            Ok(false) => {
                queue.push(place, waker, woken);
                Poll::Pending
            }
            Err(e) => {
                // The session ended (or the half closed): the next
                // waiter learns it too.
                queue.wake_one();
                Poll::Ready(Err(e))
            }
        }
    }
}

impl<S: StableStore> Drop for Reserve<'_, S> {
    /// Nothing held is the common case (the poll that took the
    /// reservation gave it to the permit): on hosts (feature `std`) it is
    /// checked where the future is dropped, without a call (a call with
    /// its saved registers cost as much again, once per message). Small
    /// targets keep one copy of the whole drop.
    #[cfg_attr(feature = "std", inline)]
    fn drop(&mut self) {
        if self.held != Held::Nothing {
            self.give_back();
        }
    }
}

impl<S: StableStore> Reserve<'_, S> {
    /// Gives back what the future holds: its place in the queue, or a
    /// reservation a panicking wake left.
    #[cfg_attr(feature = "std", inline(never))]
    #[cfg_attr(not(feature = "std"), inline(always))]
    fn give_back(&mut self) {
        let held = self.held;
        let place: *mut WriterPlace = &mut self.place;
        let unlinked = self.storage.try_lock(|l| {
            if held == Held::Reservation {
                // Its poll took the reservation and a wake after it
                // panicked: nobody has a permit to end it.
                l.session.end_reserve();
                return;
            }
            let queue = &mut l.wakers.writers;
            // SAFETY: as in `poll`; after this the queue no longer points
            // to `place`.
            unsafe {
                match WriterQueue::state(place) {
                    PlaceState::Queued => queue.remove(place),
                    // Its turn came and it leaves without taking it: the
                    // next waiter's turn.
                    PlaceState::Woken => {
                        queue.take_turn(place);
                        queue.wake_one();
                    }
                    PlaceState::Out => {}
                }
            }
        });
        // A reservation dropped inside the lock stays taken (nothing
        // unsound: later writers wait). A place dropped there:
        if unlinked.is_none() && held == Held::Place {
            // Dropped inside the storage's own lock, by code that lock runs
            // (a wake that drops its task's future, an encoder): this
            // thread holds the lock, so the place can be read. Woken (its
            // own wake dropped it): the turn is passed on when the lock
            // settles. Still queued: the queue cannot be reached and would
            // point to freed memory; nothing sound is left but to stop.
            // SAFETY: `try_lock` declines only inside the lock, which this
            // thread holds: nothing else touches the place.
            match unsafe { WriterQueue::state(place) } {
                PlaceState::Out => {}
                PlaceState::Woken => self.storage.turn_given_up(),
                PlaceState::Queued => abort("a queued `reserve` future was dropped inside its conduit's lock"),
            }
        }
    }
}

/// Stops the program, also where panics unwind: a panic while a panic
/// unwinds aborts. For states that no unwinding can leave sound.
#[cold]
#[allow(clippy::panic, reason = "the only sound way on: stop the program")]
fn abort(why: &'static str) -> ! {
    struct PanicAgain(&'static str);
    impl Drop for PanicAgain {
        fn drop(&mut self) {
            panic!("{}", self.0);
        }
    }
    let _again = PanicAgain(why);
    panic!("{why}");
}
