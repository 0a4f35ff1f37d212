//! `EarlyPermit`: on hosts (feature `std`), the reservation a send keeps
//! for the next message, taken by the next `reserve` without the lock.
//!
//! A send whose writer has nobody waiting behind it
//! keeps its reservation for the next message when the replay ring has
//! room for one more (as `try_reserve` would grant it then), and offers it
//! as an [`EarlyPermit`]: the next `reserve` (of any task) takes it with
//! one atomic operation instead of a lock of the storage. The rules that
//! keep the queue's order and every wait's end:
//!
//! - it is offered only while no writer is queued or woken, and while it
//!   is offered no writer queues: a `reserve` polled under the lock takes
//!   it there rather than wait behind it;
//! - a future that has a place in the queue (polled before) never takes it
//!   without the lock;
//! - a lock that may end the session or close the half (every lock but
//!   the application's data path) takes it back when the writer may no
//!   longer reserve, so `reserve` answers the session's end as before,
//!   and a new session's reset clears it.

use core::sync::atomic::{AtomicBool, Ordering};

/// Hosts: a reservation taken early by a send, for whichever `reserve`
/// comes next (see the module's rules). Set only under the storage's lock;
/// taken by exactly one [`claim`](Self::claim).
pub struct EarlyPermit(AtomicBool);

impl EarlyPermit {
    /// None offered.
    pub(crate) const fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Under the lock: the session holds a reservation for the next
    /// `reserve`.
    pub(crate) fn offer(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether one is offered (under the lock: exact, as only a claim
    /// takes it away).
    #[inline]
    pub(crate) fn offered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// At the end of a lock that may end the session or close the half:
    /// a reservation offered to a writer that may no longer reserve is
    /// taken back.
    #[inline(always)]
    pub(crate) fn settle(&self, session: &mut crate::session::Session<'_>) {
        if self.offered() && session.writer_may_not_reserve() && self.claim() {
            session.end_reserve();
        }
    }

    /// Takes the offered reservation: `true` for the one caller that gets
    /// it (the read first: no atomic write when none is offered).
    #[inline]
    pub(crate) fn claim(&self) -> bool {
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::Acquire)
    }
}
