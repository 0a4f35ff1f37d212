//! Hosts (feature `std`): a received message's release recorded by its
//! drop without the storage's lock, and carried out by the next lock,
//! whoever takes it (most often the receiver's next `recv`).
//!
//! On a host, each lock of the storage is a process-wide mutex and a
//! thread-local (`critical-section`'s `std` implementation): the release
//! of every received message was one lock of its own, beside the
//! receiver's `recv`.
//!
//! # When a release may wait
//!
//! Releasing a message frees its room in the receive ring. That room
//! matters in two ways only:
//!
//! - the window granted to the peer, which is computed under a lock: every
//!   lock first carries out a recorded release, so a grant always counts
//!   it (a grant made while the release was still recorded counted the
//!   message as held: smaller, never a promise the ring cannot keep);
//! - the window update owed when the window the peer last heard had
//!   closed ([`Session::release`](crate::session::Session::release)): the
//!   peer may then wait for nothing but this update, so it must go out now.
//!
//! So a release may wait exactly while carrying it out would owe no window
//! update (`Session::release_may_wait`):
//! not attached, an ack owed already (it carries the window granted when
//! it is sent, under a lock), or the window the peer heard still open (the
//! peer may send, and the frame's arrival is a lock: it carries the
//! recorded release out first, and a delivery that uses the last of the
//! credit the peer heard while the ring has room owes the update itself,
//! `Session::deliver`). The end of every lock
//! computes it again and keeps it in the word below; when it turns false,
//! the recorded release is taken and carried out before the lock's wakes
//! (the update is owed, and its wake runs, in that same lock). While it is
//! false, a drop takes the lock as before. Whatever the application does
//! next (a receiver waiting in `recv`, a receiver dropped, a message held
//! in another task) is then no different from a release under the lock:
//! nothing waits on a recorded release.
//!
//! One release is recorded at a time; a second drop before the next lock
//! takes the lock (which carries out the first).

use crate::session::Session;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Releases may be recorded (the word's low bit).
const OPEN: usize = 1;

/// The word: [`OPEN`], and the recorded token plus one above it (0: none).
/// Only a drop's compare-exchange from exactly `OPEN` writes it outside
/// the storage's lock; everything else is done by the lock's holder.
pub(crate) struct LateRelease(AtomicUsize);

impl LateRelease {
    /// Closed, nothing recorded.
    pub(crate) const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// The drop of a received message: records `token` if releases may
    /// wait and none is recorded; `false` when the caller must take the
    /// lock. Release ordering: the message's bytes were read before the
    /// lock that frees them for the driver's writes.
    #[inline]
    pub(crate) fn record(&self, token: usize) -> bool {
        let Some(word) = token.checked_add(1).and_then(|t| t.checked_mul(2)) else { return false };
        self.0.compare_exchange(OPEN, word | OPEN, Ordering::Release, Ordering::Relaxed).is_ok()
    }

    /// At the start of a lock: the recorded release is carried out.
    #[inline(always)]
    pub(crate) fn carry_out(&self, session: &mut Session<'_>) {
        if let Some(token) = self.take() {
            session.release(token);
        }
    }

    /// At the end of a lock that may have changed it: whether a release
    /// may wait, asked again; one recorded until it stops is carried out
    /// now (its window update and wake are this lock's).
    #[inline(always)]
    pub(crate) fn settle(&self, session: &mut Session<'_>) {
        let may_wait = session.release_may_wait();
        if may_wait == self.is_open() {
            return;
        }
        if may_wait {
            self.open();
        } else if let Some(token) = self.close() {
            session.release(token);
        }
    }

    /// Under the lock: the recorded token, taken (the word stays open).
    #[inline]
    fn take(&self) -> Option<usize> {
        let word = self.0.load(Ordering::Acquire);
        if word <= OPEN {
            return None;
        }
        // A token is recorded: no drop writes the word until this store.
        self.0.store(OPEN, Ordering::Relaxed);
        Some((word >> 1) - 1)
    }

    /// Under the lock: whether releases may be recorded now.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.0.load(Ordering::Relaxed) & OPEN != 0
    }

    /// Under the lock, when it was closed: releases may be recorded.
    fn open(&self) {
        // Closed, no drop writes the word.
        self.0.store(OPEN, Ordering::Relaxed);
    }

    /// Under the lock, when it was open: drops take the lock from now on;
    /// the token recorded until now, if any, to carry out.
    fn close(&self) -> Option<usize> {
        let word = self.0.swap(0, Ordering::Acquire);
        (word > OPEN).then(|| (word >> 1) - 1)
    }
}
