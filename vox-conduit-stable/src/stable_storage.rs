//! `StableStorage`: everything a stable conduit keeps (session state,
//! replay ring, receive ring), in one value that can live in a `static`.

use crate::StableStats;
use crate::session::{Instant, MAX_RING_BYTES, RxEntry, Session, SessionState, TxEntry, Wakes};
use crate::writer_queue::WriterQueue;
use core::cell::{Cell, UnsafeCell};
use core::ptr::NonNull;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;
use vox_types::LendsSlots;

/// Storage of one stable conduit:
///
/// - a replay ring of `TX_BYTES` bytes and `TX_MSGS` messages (one entry
///   is kept for the close marker): sent messages wait there until the
///   peer acknowledges them;
/// - a receive ring of `RX_BYTES` bytes and `RX_MSGS` messages: received
///   messages are copied there once (freeing the link at once) and the
///   application's [`SelfRef`](vox_types::SelfRef) borrows them in place.
///
/// The receive ring is the window this side grants its peer. Put the
/// storage in a `static` (`new` is `const`, and a fresh storage is all
/// zero bytes, so it costs no flash) or in an `Arc`.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use vox_conduit_stable::StableStorage;
///
/// static STORAGE: StableStorage<CriticalSectionRawMutex, 1024, 16, 512, 8> = StableStorage::new();
/// ```
// r[impl stable.replay]
pub struct StableStorage<
    M: RawMutex,
    const TX_BYTES: usize,
    const TX_MSGS: usize,
    const RX_BYTES: usize,
    const RX_MSGS: usize,
> {
    inner: Mutex<M, Guarded<TX_BYTES, TX_MSGS, RX_MSGS>>,
    /// Outside the mutex: the application reads lent regions while the
    /// driver writes free ones (see `write_received`).
    rx_bytes: UnsafeCell<[u8; RX_BYTES]>,
    /// Hosts: a received message's release recorded by its drop without
    /// the lock, carried out by the next lock.
    #[cfg(feature = "std")]
    late: crate::late_release::LateRelease,
    /// Hosts: the next reservation, taken early by a send.
    #[cfg(feature = "std")]
    early: crate::early_permit::EarlyPermit,
}

// SAFETY: the session state is behind the `M` mutex (`Sync` when `M` is),
// which `Guarded` needs (its flags are `Cell`s, read by one thread at a
// time: the one holding the mutex).
// `rx_bytes` is written only under that mutex, in regions the receive ring
// says are free, and read only through backings lent for regions the ring
// keeps untouched until they are released; so no byte is written while it
// is read.
// r[impl types.selfref.miri]
unsafe impl<M: RawMutex + Sync, const TB: usize, const TM: usize, const RB: usize, const RM: usize> Sync
    for StableStorage<M, TB, TM, RB, RM>
{
}

struct Inner<const TB: usize, const TM: usize, const RM: usize> {
    state: SessionState,
    /// The conduit's halves and driver alive (at most 3): a new session
    /// waits for all of them to go.
    parts: u8,
    /// The driver's clock.
    now: Instant,
    /// The deadline the driver's timer sleeps until.
    timer_at: TimerAt,
    tx_bytes: [u8; TB],
    tx_entries: [TxEntry; TM],
    rx_entries: [RxEntry; RM],
    wakers: Wakers,
}

/// The state under the storage's mutex, borrowed by one lock at a time:
/// a `RefCell` of its own, whose borrow and view are one out-of-line call
/// (a `RefCell`'s borrow and then the view cost two calls and their
/// arguments at every place that locks the storage: about 300 B of each
/// lm3s6965 firmware's flash). `busy` plays the `RefCell`'s borrow flag.
struct Guarded<const TB: usize, const TM: usize, const RM: usize> {
    flags: Flags,
    inner: UnsafeCell<Inner<TB, TM, RM>>,
}

/// Read and written only by the thread holding the storage's mutex.
struct Flags {
    /// The state is borrowed: a lock taken inside the lock (by a waker,
    /// an encoder, a drop that the lock runs) is refused.
    busy: Cell<bool>,
    /// Writers' turns given up inside the lock (a woken writer's future
    /// dropped by its own wake), passed on when the lock settles. Beside
    /// the state, which is borrowed then.
    turns_given_up: Cell<u8>,
}

/// A lock taken inside the storage's own lock: a bug of the caller (as a
/// `RefCell` borrowed twice).
#[cold]
#[inline(never)]
#[allow(clippy::panic, reason = "as `RefCell::borrow_mut`: a second borrow is a bug")]
fn reentered() -> ! {
    panic!("a stable conduit's storage locked inside its own lock");
}

impl<const TB: usize, const TM: usize, const RM: usize> Guarded<TB, TM, RM> {
    /// Borrows the state: the view a locked storage gives, the state
    /// borrowed until it is dropped; panics if it is borrowed already.
    /// Out of line on small targets: one copy of its stores, not one at
    /// every place that locks the storage; inlined on hosts (feature
    /// `std`), where it is built five times per message.
    #[cfg_attr(not(feature = "std"), inline(never))]
    #[cfg_attr(feature = "std", inline(always))]
    fn enter(&self) -> Locked<'_> {
        if self.flags.busy.replace(true) {
            reentered();
        }
        // SAFETY: `busy` was clear, so no reference to `inner` is alive
        // (every one comes from here, and `busy` stays set until the view
        // that holds it is dropped, or `settle` ends it as the last use of
        // the view). `Guarded` is reached only under the storage's mutex,
        // so by one thread at a time.
        let inner = unsafe { &mut *self.inner.get() };
        let Inner { state, now, timer_at, tx_bytes, tx_entries, rx_entries, wakers, parts } = inner;
        let session = Session { state, tx_bytes, tx_entries, rx_entries };
        Locked {
            session,
            now,
            timer_at,
            wakers,
            parts,
            flags: &self.flags,
            check_timer: true,
            #[cfg(feature = "std")]
            check_host: true,
        }
    }
}

/// Who waits for what.
pub struct Wakers {
    /// Tasks waiting in `reserve`, each woken alone, oldest first.
    pub(crate) writers: WriterQueue,
    pub(crate) reader: WakerRegistration,
    /// The driver: a frame to send, an attachment or the session ending,
    /// a deadline earlier than the one its timer sleeps for. One
    /// registration: the driver is one future, whose parts all register
    /// the same task's waker.
    pub(crate) driver: WakerRegistration,
}

impl Wakers {
    /// Writers' turns given up inside the lock go to the next writers.
    #[cold]
    #[inline(never)]
    fn pass_given_up_turns_on(&mut self, turns_given_up: &Cell<u8>) {
        loop {
            let given_up = turns_given_up.get();
            if given_up == 0 {
                break;
            }
            turns_given_up.set(given_up - 1);
            self.writers.pass_turn_on();
        }
    }

    fn wake(&mut self, w: Wakes) {
        if w.has(Wakes::WRITER) {
            self.writers.wake_one();
        }
        if w.has(Wakes::READER) {
            self.reader.wake();
        }
        if w.has(Wakes::TRANSMIT) || w.has(Wakes::DETACH) {
            self.driver.wake();
        }
    }
}

/// The deadline the driver's timer sleeps until, stored inverted so that
/// "none" ([`Instant::MAX`]) is all zero bits: storage in a `static` then
/// stays in `.bss` instead of costing its size in flash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerAt(Instant);

impl TimerAt {
    /// No deadline.
    pub(crate) const NONE: Self = Self(0);

    /// A timer sleeping until `due`.
    pub(crate) fn at(due: Instant) -> Self {
        Self(!due)
    }

    /// The deadline.
    pub(crate) fn get(self) -> Instant {
        !self.0
    }
}

impl Locked<'_> {
    /// Ends every operation under the lock: wakes whoever it asked, and
    /// the timer when a deadline came forward (a first unacknowledged
    /// frame, a stall, the end): the timer sleeps for a later one, so it
    /// wakes to sleep again for the new one; then releases the state, as
    /// the view's drop would (the caller forgets the view: one call ends
    /// the lock, not a call and the drop). Out of line on small targets:
    /// `lock` is generic over its closure, this is not; inlined on hosts
    /// (feature `std`), where it runs five times per message.
    #[cfg_attr(not(feature = "std"), inline(never))]
    #[cfg_attr(feature = "std", inline(always))]
    fn settle(&mut self) {
        let turns_given_up = &self.flags.turns_given_up;
        let mut wakes = self.session.state.take_wakes();
        // Half the application's locks ask for no wake (a reservation, a
        // message taken): one test for them.
        if wakes.any() {
            // A writer is woken only when it can go on (every change that
            // lets it asks for the wake again).
            if wakes.has(Wakes::WRITER) && !self.wakers.writers.is_empty() && !self.session.writer_may_proceed() {
                wakes.clear(Wakes::WRITER);
            }
            self.wakers.wake(wakes);
        }
        // A woken writer dropped inside this lock (by a wake above, or
        // one its operation ran) could not pass its turn on: it goes to
        // the next writer now.
        if turns_given_up.get() != 0 {
            self.wakers.pass_given_up_turns_on(turns_given_up);
        }
        if self.check_timer {
            let due = self.session.next_deadline();
            if due < self.timer_at.get() {
                *self.timer_at = TimerAt::at(due);
                self.wakers.driver.wake();
            }
        }
        self.flags.busy.set(false);
    }
}

/// What a locked storage gives the conduit's halves and driver.
pub struct Locked<'a> {
    pub(crate) session: Session<'a>,
    pub(crate) now: &'a mut Instant,
    pub(crate) timer_at: &'a mut TimerAt,
    pub(crate) wakers: &'a mut Wakers,
    /// The parts of the session alive.
    parts: &'a mut u8,
    /// The storage's flags: its state borrowed (cleared when this view
    /// is dropped), writers' turns given up inside the lock.
    flags: &'a Flags,
    /// Whether the operation may have brought a deadline forward (see
    /// [`timer_unchanged`](Self::timer_unchanged)).
    check_timer: bool,
    /// Hosts: whether the operation may have changed what the host
    /// shortcuts depend on (see [`data_path_only`](Self::data_path_only)).
    #[cfg(feature = "std")]
    check_host: bool,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.flags.busy.set(false);
    }
}

impl Locked<'_> {
    /// The operation under this lock cannot bring a deadline forward
    /// (taking or releasing a received message, pushing one, a
    /// reservation granted with no writer waiting): `settle` then skips
    /// recomputing the next deadline, the cost of which is paid once per
    /// message on the data path otherwise. Only a deadline coming earlier
    /// needs the timer woken; later ones are found when it wakes.
    pub(crate) fn timer_unchanged(&mut self) {
        self.check_timer = false;
    }

    /// Hosts: the operation is one of the application's data path
    /// (taking a message, releasing one, reserving, pushing), which
    /// changes neither the window the peer heard, the ack owed, the phase
    /// nor the session's end: only the driver's frames and a session's end
    /// do. `settle` then skips asking again whether releases may wait
    /// (`late_release`) and whether an early reservation must be taken
    /// back (`early_permit`).
    #[cfg(feature = "std")]
    pub(crate) fn data_path_only(&mut self) {
        self.check_host = false;
    }
}

/// A part of a session that counts in the storage's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The sending half.
    Tx,
    /// The receiving half.
    Rx,
    /// The driver.
    Driver,
}

pub(crate) mod sealed {
    use super::Locked;
    use core::ptr::NonNull;

    /// The storage operations behind [`StableStore`](super::StableStore).
    pub trait Sealed: vox_types::LendsSlots {
        /// Runs `f` with the session locked, then wakes whoever it asked.
        fn lock<R>(&self, f: impl FnOnce(&mut Locked<'_>) -> R) -> R;

        /// [`lock`](Self::lock), or `None` (without running `f`) where
        /// `lock` would panic: inside the lock itself (a waker, a message
        /// encoder, a drop run by it).
        fn try_lock<R>(&self, f: impl FnOnce(&mut Locked<'_>) -> R) -> Option<R>;

        /// Resets the storage for a new session, whose conduit halves and
        /// driver (three parts) it then counts; refused while a part of an
        /// earlier session is alive, or the application still holds
        /// messages it received (the new session would write over them).
        fn reset(&self, state: crate::session::SessionState) -> Result<(), crate::ConfigError>;

        /// A part of the session is gone: counted, and a conduit half's
        /// end run, under one lock before any wake (a waker that panics
        /// cannot leave the count behind). The driver's end wakes no one.
        /// One function for the three parts: one copy of the lock.
        fn part_gone(&self, part: super::Part);

        /// A woken writer's future is dropped where `try_lock` declines
        /// (inside the lock): its turn goes to the next writer when the
        /// lock settles. Call only inside the lock.
        fn turn_given_up(&self);

        /// Copies `bytes` to `offset` in the receive buffer. Call only
        /// under `lock`, for a region the receive ring just allocated.
        fn write_received(&self, offset: usize, bytes: &[u8]);

        /// Start of the receive buffer's byte `offset`.
        fn received_ptr(&self, offset: usize) -> NonNull<u8>;

        /// Size of the receive buffer.
        fn rx_capacity(&self) -> usize;

        /// Size of the replay buffer.
        fn tx_capacity(&self) -> usize;

        /// Replay entries and receive entries.
        fn entries(&self) -> (usize, usize);

        /// Hosts: the next reservation, taken early by a send (see
        /// `early_permit`).
        #[cfg(feature = "std")]
        fn early_permit(&self) -> &crate::early_permit::EarlyPermit;
    }
}

/// Storage a [`StableConduit`](crate::StableConduit) can run on:
/// [`StableStorage`] of any size. Sealed.
pub trait StableStore: sealed::Sealed {
    /// Counters of the conduit.
    fn stats(&self) -> StableStats;
}

impl<M: RawMutex, const TB: usize, const TM: usize, const RB: usize, const RM: usize> StableStorage<M, TB, TM, RB, RM> {
    const RINGS_FIT: () = assert!(TB <= MAX_RING_BYTES && RB <= MAX_RING_BYTES, "a ring of over 2^30 - 1 bytes");

    /// Empty storage, usable in a `static`.
    pub const fn new() -> Self {
        let () = Self::RINGS_FIT;
        // All-zero placeholder until a conduit is made on it.
        let state = SessionState::zeroed();
        Self {
            inner: Mutex::new(Guarded {
                flags: Flags { busy: Cell::new(false), turns_given_up: Cell::new(0) },
                inner: UnsafeCell::new(Inner {
                    state,
                    parts: 0,
                    now: 0,
                    timer_at: TimerAt::NONE,
                    tx_bytes: [0; TB],
                    tx_entries: [TxEntry::EMPTY; TM],
                    rx_entries: [RxEntry::EMPTY; RM],
                    wakers: Wakers {
                        writers: WriterQueue::new(),
                        reader: WakerRegistration::new(),
                        driver: WakerRegistration::new(),
                    },
                }),
            }),
            rx_bytes: UnsafeCell::new([0; RB]),
            #[cfg(feature = "std")]
            late: crate::late_release::LateRelease::new(),
            #[cfg(feature = "std")]
            early: crate::early_permit::EarlyPermit::new(),
        }
    }
}

impl<M: RawMutex, const TB: usize, const TM: usize, const RB: usize, const RM: usize> Default
    for StableStorage<M, TB, TM, RB, RM>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex + 'static, const TB: usize, const TM: usize, const RB: usize, const RM: usize> LendsSlots
    for StableStorage<M, TB, TM, RB, RM>
{
    unsafe fn release_slot(&self, token: usize) {
        // Hosts: recorded for the next lock when that stalls nobody.
        #[cfg(feature = "std")]
        if self.late.record(token) {
            return;
        }
        sealed::Sealed::lock(self, |l| {
            // Releasing may owe a window update (the transmitter's wake),
            // which only takes deadlines away.
            l.timer_unchanged();
            #[cfg(feature = "std")]
            l.data_path_only();
            l.session.release(token)
        });
    }
}

impl<M: RawMutex + 'static, const TB: usize, const TM: usize, const RB: usize, const RM: usize> sealed::Sealed
    for StableStorage<M, TB, TM, RB, RM>
{
    fn lock<R>(&self, f: impl FnOnce(&mut Locked<'_>) -> R) -> R {
        self.inner.lock(|cell| {
            let mut locked = cell.enter();
            self.begin(&mut locked);
            let r = f(&mut locked);
            self.settle(&mut locked);
            core::mem::forget(locked);
            r
        })
    }

    fn try_lock<R>(&self, f: impl FnOnce(&mut Locked<'_>) -> R) -> Option<R> {
        self.inner.lock(|cell| {
            if cell.flags.busy.get() {
                return None;
            }
            let mut locked = cell.enter();
            self.begin(&mut locked);
            let r = f(&mut locked);
            self.settle(&mut locked);
            core::mem::forget(locked);
            Some(r)
        })
    }

    fn turn_given_up(&self) {
        self.inner.lock(|cell| {
            let turns = &cell.flags.turns_given_up;
            turns.set(turns.get().saturating_add(1));
        });
    }

    // r[impl core.config]
    fn reset(&self, state: SessionState) -> Result<(), crate::ConfigError> {
        self.inner.lock(|cell| {
            // Nothing to wake: the view is dropped, not settled.
            let mut l = cell.enter();
            self.begin(&mut l);
            // Checked under the lock that lends messages: none is lent
            // between the count and the reset.
            let messages = l.session.rx_entries.iter().filter(|e| e.is_lent()).count();
            if messages > 0 || *l.parts > 0 {
                return Err(crate::ConfigError::StorageInUse { parts: *l.parts, messages });
            }
            *l.session.state = state;
            *l.parts = 3;
            *l.now = 0;
            *l.timer_at = TimerAt::NONE;
            // No reservation of the last session is left to take.
            #[cfg(feature = "std")]
            self.early.claim();
            Ok(())
        })
    }

    #[cfg_attr(not(feature = "std"), inline(never))]
    fn part_gone(&self, part: Part) {
        self.inner.lock(|cell| {
            let mut locked = cell.enter();
            self.begin(&mut locked);
            *locked.parts = locked.parts.saturating_sub(1);
            match part {
                Part::Driver => return,
                // The close marker follows every message sent.
                Part::Tx => locked.session.close_tx(),
                // Messages are acked and dropped from now on.
                Part::Rx => locked.session.drop_receiver(),
            }
            self.settle(&mut locked);
            core::mem::forget(locked);
        });
    }

    fn write_received(&self, offset: usize, bytes: &[u8]) {
        let fits = offset.checked_add(bytes.len()).is_some_and(|end| end <= RB);
        if !fits {
            return;
        }
        let dst = self.received_ptr(offset);
        // SAFETY: `offset + len <= RB`, so the range is inside the buffer;
        // the receive ring just allocated it, so no backing points into it
        // and nothing else writes it (the caller holds the lock); `bytes`
        // is a link payload, never this buffer.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_ptr(), bytes.len()) };
    }

    fn rx_capacity(&self) -> usize {
        RB
    }

    fn tx_capacity(&self) -> usize {
        TB
    }

    fn entries(&self) -> (usize, usize) {
        (TM, RM)
    }

    #[cfg(feature = "std")]
    fn early_permit(&self) -> &crate::early_permit::EarlyPermit {
        &self.early
    }

    fn received_ptr(&self, offset: usize) -> NonNull<u8> {
        let base = self.rx_bytes.get().cast::<u8>();
        // SAFETY: callers pass offsets within (or one past) the buffer,
        // from the receive ring; `UnsafeCell::get` is never null, and a
        // pointer inside the allocation is not either.
        unsafe { NonNull::new_unchecked(base.wrapping_add(offset.min(RB))) }
    }
}

impl<M: RawMutex + 'static, const TB: usize, const TM: usize, const RB: usize, const RM: usize>
    StableStorage<M, TB, TM, RB, RM>
{
    /// Starts an operation under the lock, on the view of the locked
    /// state (hosts: the release recorded without the lock is carried
    /// out first).
    #[inline(always)]
    fn begin(&self, _locked: &mut Locked<'_>) {
        #[cfg(feature = "std")]
        self.late.carry_out(&mut _locked.session);
    }

    /// Ends an operation under the lock (see [`Locked::settle`]).
    #[inline(always)]
    fn settle(&self, locked: &mut Locked<'_>) {
        #[cfg(feature = "std")]
        if locked.check_host {
            self.late.settle(&mut locked.session);
            self.early.settle(&mut locked.session);
        } else {
            // The data path's promise (`Locked::data_path_only`): a release
            // that may wait still may, and a kept reservation still may be
            // used. Tests catch an operation that breaks it.
            debug_assert!(
                !self.late.is_open() || locked.session.release_may_wait(),
                "a data-path lock closed releases"
            );
            debug_assert!(
                !(self.early.offered() && locked.session.writer_may_not_reserve()),
                "a data-path lock ended what a kept reservation is for"
            );
        }
        locked.settle();
    }
}

impl<M: RawMutex + 'static, const TB: usize, const TM: usize, const RB: usize, const RM: usize> StableStore
    for StableStorage<M, TB, TM, RB, RM>
{
    fn stats(&self) -> StableStats {
        self.inner.lock(|cell| cell.enter().session.state.stats())
    }
}

#[cfg(test)]
mod tests {
    //! Received messages borrowed in place while later ones are written
    //! around them: run under Miri by the test command.

    use crate::{StableConduit, StableConfig, StableStorage};
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use std::sync::Arc;
    use std::vec::Vec;
    use vox_link_embedded::sim::memory_link_source;
    use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

    #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema, Debug, PartialEq)]
    struct Blob<'a>(u32, &'a [u8]);
    vox_types::msg_family!(BlobFamily => Blob<'a>);

    /// A clock that stands still: the test is about rings, not time, and
    /// no deadline (keepalive, silence) comes while it runs.
    #[derive(Clone, Default)]
    struct FrozenClock;
    impl vox_types::Clock for FrozenClock {
        fn now(&self) -> vox_types::Instant {
            vox_types::Instant::ZERO
        }
        async fn sleep_until(&self, at: vox_types::Instant) {
            if at > vox_types::Instant::ZERO {
                core::future::pending::<()>().await;
            }
        }
    }

    type Small = StableStorage<CriticalSectionRawMutex, 128, 4, 64, 3>;
    type Pair = StableConduit<BlobFamily, Small>;

    /// Two conduits over fresh in-memory links, and their drivers (on a
    /// clock that stands still).
    fn pair(config: StableConfig) -> (Pair, Pair, impl core::future::Future) {
        let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
        let (a, ad) = Pair::initiator(Arc::new(Small::new()), config).unwrap();
        let (b, bd) = Pair::acceptor(Arc::new(Small::new()), config).unwrap();
        let rng: rand_chacha::ChaCha8Rng = rand_chacha::rand_core::SeedableRng::seed_from_u64(7);
        let drivers = embassy_futures::select::select(ad.run(dialer, FrozenClock), bd.run(listener, rng, FrozenClock));
        (a, b, drivers)
    }

    /// Runs `app` to its end beside `drivers`; a driver that ends first
    /// fails the test.
    fn run(app: impl core::future::Future, drivers: impl core::future::Future) {
        match futures::executor::block_on(embassy_futures::select::select(app, drivers)) {
            embassy_futures::select::Either::First(_) => {}
            embassy_futures::select::Either::Second(_) => panic!("a driver ended first"),
        }
    }

    // r[verify types.selfref.miri]
    #[test]
    fn held_messages_stay_intact_while_the_ring_wraps_around_them() {
        let config = StableConfig {
            max_message: 24,
            ack_every: 1,
            ack_delay_ms: 1,
            keepalive_ms: 1_000_000,
            timeout_ms: 4_000_000,
            retry_delay_ms: 1,
            linger_ms: 4_000_000,
            connect_timeout_ms: 4_000_000,
        };
        let (a, b, drivers) = pair(config);
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        const N: u32 = 12;
        let payload = |i: u32| std::vec![i as u8; (i as usize * 5) % 20 + 1];
        let send = async {
            for i in 0..N {
                let p = payload(i);
                atx.reserve().await.unwrap().send(Blob(i, &p)).unwrap();
            }
        };
        let receive = async {
            // Always hold the last two messages while receiving the next.
            let mut held = Vec::new();
            for i in 0..N {
                let m = brx.recv().await.unwrap().unwrap();
                assert_eq!(m.get::<BlobFamily>(), &Blob(i, &payload(i)));
                held.push(m);
                if held.len() > 2 {
                    held.remove(0);
                }
                for h in &held {
                    let Blob(id, bytes) = h.get::<BlobFamily>();
                    assert_eq!(*bytes, &payload(*id)[..], "a held message was overwritten");
                }
            }
        };
        run(embassy_futures::join::join(send, receive), drivers);
    }

    /// Messages handed to another task, which drops each a few polls
    /// later, mostly while the receiver waits in `recv`, through a receive
    /// ring of three, every part a task of its own (polled only when
    /// woken): every one arrives. (Hosts record a release without the lock
    /// only while it owes no window update; one that owed the update and
    /// waited for a later lock would stall here.)
    // r[verify stable.flow.no-stall]
    #[test]
    fn messages_dropped_by_another_task_while_recv_waits_all_arrive() {
        use futures::StreamExt;
        use futures::task::LocalSpawnExt;
        const N: u32 = 60;
        let (hand_over, mut handed) = futures::channel::mpsc::unbounded();
        let dropped = std::rc::Rc::new(core::cell::Cell::new(0));
        let mut pool = futures::executor::LocalPool::new();
        let spawner = pool.spawner();
        spawn_handing_over(&spawner, N, move |m| hand_over.unbounded_send(m).unwrap(), || ());
        let count = dropped.clone();
        spawner
            .spawn_local(async move {
                while let Some(m) = handed.next().await {
                    for _ in 0..count.get() % 4 {
                        embassy_futures::yield_now().await;
                    }
                    drop(m);
                    count.set(count.get() + 1);
                }
            })
            .unwrap();
        pool.run_until_stalled();
        assert_eq!(dropped.get(), N, "every message arrived and was dropped");
    }

    /// Spawns a session's drivers, a sender of `n` messages and a receiver
    /// that gives each message to `hand_over` and calls `done` after the
    /// last (the clock stands still: only the drops move the session on).
    fn spawn_handing_over(
        spawner: &futures::executor::LocalSpawner,
        n: u32,
        mut hand_over: impl FnMut(vox_types::SelfRef<BlobFamily>) + 'static,
        done: impl FnOnce() + 'static,
    ) {
        use futures::task::LocalSpawnExt;
        let (a, b, drivers) = pair(StableConfig { max_message: 24, ack_every: 4, ..StableConfig::DEFAULT });
        spawner
            .spawn_local(async move {
                drivers.await;
                panic!("a driver ended");
            })
            .unwrap();
        spawner
            .spawn_local(async move {
                let (atx, _arx) = a.split();
                for i in 0..n {
                    atx.reserve().await.unwrap().send(Blob(i, &[i as u8; 12])).unwrap();
                }
                core::future::pending::<()>().await;
            })
            .unwrap();
        spawner
            .spawn_local(async move {
                let (_btx, mut brx) = b.split();
                for i in 0..n {
                    let m = brx.recv().await.unwrap().unwrap();
                    assert_eq!(m.get::<BlobFamily>(), &Blob(i, &[i as u8; 12]));
                    hand_over(m);
                }
                done();
                core::future::pending::<()>().await;
            })
            .unwrap();
    }

    /// As above, with the messages dropped on another thread while the
    /// drivers run on this one: a drop's lock-free record races the
    /// drivers' locks (run under Miri with `std,send` by the test command).
    // r[verify stable.flow.no-stall]
    #[cfg(feature = "send")]
    #[test]
    fn messages_dropped_on_another_thread_while_recv_waits_all_arrive() {
        use std::sync::atomic::{AtomicBool, Ordering};
        const N: u32 = 40;
        let (hand_over, handed) = std::sync::mpsc::channel();
        let dropper = std::thread::spawn(move || {
            let mut dropped = 0u32;
            for m in handed {
                for _ in 0..dropped % 3 {
                    std::thread::yield_now();
                }
                drop(m);
                dropped += 1;
            }
            dropped
        });
        let all_received = Arc::new(AtomicBool::new(false));
        let mut pool = futures::executor::LocalPool::new();
        let done = all_received.clone();
        spawn_handing_over(
            &pool.spawner(),
            N,
            move |m| hand_over.send(m).unwrap(),
            move || done.store(true, Ordering::Relaxed),
        );
        // The clock stands still: only the drops (and the wakes they
        // cause) move the session on. A stall shows as no progress here.
        let start = std::time::Instant::now();
        while !all_received.load(Ordering::Relaxed) {
            pool.run_until_stalled();
            assert!(start.elapsed() < std::time::Duration::from_secs(120), "stalled: not every message arrived");
            std::thread::yield_now();
        }
        drop(pool);
        assert_eq!(dropper.join().unwrap(), N, "every message arrived and was dropped");
    }

    // r[verify core.burst]
    #[test]
    fn writers_waiting_together_each_get_their_turn_and_a_dropped_waiter_passes_it_on() {
        let config = StableConfig { max_message: 24, ack_every: 1, ..StableConfig::DEFAULT };
        let (a, b, drivers) = pair(config);
        let (atx, _arx) = a.split();
        let (_btx, mut brx) = b.split();
        const WRITERS: u32 = 4;
        const EACH: u32 = 3;
        let writer = |w: u32| {
            let atx = &atx;
            async move {
                for n in 0..EACH {
                    // A wait given up at once (queued, or woken, then
                    // dropped) before each real one.
                    let _ = embassy_futures::select::select(atx.reserve(), async {}).await;
                    atx.reserve().await.unwrap().send(Blob(w * EACH + n, &[w as u8; 3])).unwrap();
                }
            }
        };
        let writers = embassy_futures::join::join4(writer(0), writer(1), writer(2), writer(3));
        let receive = async {
            let mut next = [0u32; WRITERS as usize];
            for _ in 0..WRITERS * EACH {
                let m = brx.recv().await.unwrap().unwrap();
                let Blob(id, bytes) = m.get::<BlobFamily>();
                let w = (id / EACH) as usize;
                assert_eq!(id % EACH, next[w], "each writer's messages in its order");
                assert_eq!(*bytes, &[w as u8; 3][..]);
                next[w] += 1;
            }
        };
        run(embassy_futures::join::join(writers, receive), drivers);
    }

    /// A message kept from a session on a storage, then a new session on
    /// that storage: refused while the message is held (the new session
    /// would write its messages over the held bytes), served once it is
    /// dropped. Run under Miri: an overwrite would be a write under a live
    /// shared reference.
    // r[verify types.selfref]
    // r[verify core.config]
    #[test]
    fn a_storage_whose_messages_are_still_held_is_not_reset_for_a_new_session() {
        let config = StableConfig { max_message: 24, ack_every: 1, ..StableConfig::DEFAULT };
        let (sa, sb) = (Arc::new(Small::new()), Arc::new(Small::new()));
        // One session on `sa` and `sb`: `msg` goes from the first to the
        // second, which gives it to `got`.
        let session = |msg: u8, got: &mut dyn FnMut(vox_types::SelfRef<BlobFamily>)| {
            let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
            let (a, ad) = Pair::initiator(sa.clone(), config)?;
            let (b, bd) = Pair::acceptor(sb.clone(), config)?;
            let rng: rand_chacha::ChaCha8Rng = rand_chacha::rand_core::SeedableRng::seed_from_u64(7);
            let drivers =
                embassy_futures::select::select(ad.run(dialer, FrozenClock), bd.run(listener, rng, FrozenClock));
            let (atx, _arx) = a.split();
            let (_btx, mut brx) = b.split();
            run(
                async {
                    atx.reserve().await.unwrap().send(Blob(u32::from(msg), &[msg; 8])).unwrap();
                    got(brx.recv().await.unwrap().unwrap());
                },
                drivers,
            );
            Ok::<(), crate::ConfigError>(())
        };
        let mut held = Vec::new();
        session(1, &mut |m| held.push(m)).unwrap();
        assert_eq!(
            session(2, &mut |m| held.push(m)),
            Err(crate::ConfigError::StorageInUse { parts: 0, messages: 1 }),
            "a new session while a message is held"
        );
        assert_eq!(held[0].get::<BlobFamily>(), &Blob(1, &[1; 8]), "the held message is intact");
        held.clear();
        session(3, &mut |m| assert_eq!(m.get::<BlobFamily>(), &Blob(3, &[3; 8]))).unwrap();
    }

    /// A new session on a storage whose earlier session still has a
    /// conduit half or its driver: refused, with how many are left, until
    /// the last goes (two live sessions on one storage would share its
    /// state: one's drop closed the other).
    // r[verify core.config]
    #[test]
    fn a_storage_is_not_reset_while_a_part_of_its_session_lives() {
        let config = StableConfig { max_message: 24, ..StableConfig::DEFAULT };
        let storage = Arc::new(Small::new());
        let in_use = |parts| Some(crate::ConfigError::StorageInUse { parts, messages: 0 });
        let (conduit, driver) = Pair::initiator(storage.clone(), config).unwrap();
        assert_eq!(Pair::initiator(storage.clone(), config).err(), in_use(3));
        let (tx, rx) = conduit.split();
        drop(tx);
        drop(driver);
        assert_eq!(Pair::acceptor(storage.clone(), config).err(), in_use(1));
        drop(rx);
        assert!(Pair::initiator(storage, config).is_ok(), "every part gone");
    }

    /// A half dropped while a waker the drop wakes panics is still
    /// counted as gone: the storage serves the next session.
    #[test]
    fn a_half_whose_drop_wakes_a_panicking_waker_still_frees_the_storage() {
        use core::future::Future;
        use core::task::{Context, Waker};
        let config = StableConfig { max_message: 24, ..StableConfig::DEFAULT };
        let storage = Arc::new(Small::new());
        let (conduit, driver) = Pair::initiator(storage.clone(), config).unwrap();
        let armed = Arc::new(ArmedWaker(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(armed.clone());
        // The driver waits for the peer's hello, its waker registered.
        let (dialer, _listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
        let mut running = std::boxed::Box::pin(driver.run(dialer, FrozenClock));
        let _ = running.as_mut().poll(&mut Context::from_waker(&waker));
        let (tx, rx) = conduit.split();
        armed.0.store(true, std::sync::atomic::Ordering::SeqCst);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(tx)));
        assert!(panicked.is_err(), "setup: closing the sending half woke the driver");
        drop(rx);
        drop(running);
        assert!(Pair::initiator(storage, config).is_ok(), "every part counted gone");
    }

    /// A waker that panics once it is armed.
    struct ArmedWaker(std::sync::atomic::AtomicBool);
    impl std::task::Wake for ArmedWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            if self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
                panic!("a waker that panics");
            }
        }
    }

    /// A writer queues while another holds the reservation, and the wake
    /// the lock runs after its poll panics: dropping the queued future
    /// still unlinks its place, so ending the reservation later wakes no
    /// freed memory (under Miri: no use after free; it was one when the
    /// future learned it was queued only after the lock's wakes).
    // r[verify core.burst]
    #[test]
    fn a_waker_that_panics_in_a_writers_poll_leaves_no_dangling_place() {
        use core::future::Future;
        use core::task::{Context, Poll, Waker};
        let armed = Arc::new(ArmedWaker(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(armed.clone());
        let poll = |f: core::pin::Pin<&mut dyn Future<Output = _>>| f.poll(&mut Context::from_waker(&waker)).is_ready();
        let config = StableConfig { max_message: 24, ack_every: 1, ..StableConfig::DEFAULT };
        let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
        let (a, ad) = Pair::initiator(Arc::new(Small::new()), config).unwrap();
        let (b, bd) = Pair::acceptor(Arc::new(Small::new()), config).unwrap();
        let delivered = b.stats_handle();
        let rng: rand_chacha::ChaCha8Rng = rand_chacha::rand_core::SeedableRng::seed_from_u64(7);
        let mut ad = std::boxed::Box::pin(ad.run(dialer, FrozenClock));
        let mut bd = std::boxed::Box::pin(bd.run(listener, rng, FrozenClock));
        let (atx, _arx) = a.split();
        // B never reads: its receive window closes.
        let (btx, _brx) = b.split();
        let mut send = std::boxed::Box::pin(async {
            for i in 0..3u32 {
                atx.reserve().await.unwrap().send(Blob(i, &[1; 4])).unwrap();
            }
        });
        let mut sent = false;
        for _ in 0..1_000 {
            let _ = poll(ad.as_mut());
            let _ = poll(bd.as_mut());
            sent = sent || std::pin::pin!(&mut send).poll(&mut Context::from_waker(&waker)).is_ready();
            if sent && delivered.get().messages_delivered >= 3 {
                break;
            }
        }
        // A wake during a driver's poll (an ack owed for a frame it just
        // received) has an executor poll it again, and that poll
        // registers its waker again: polled by hand, the drivers are
        // polled until quiet.
        for _ in 0..4 {
            let _ = poll(ad.as_mut());
            let _ = poll(bd.as_mut());
        }
        assert_eq!(delivered.get().messages_delivered, 3, "setup: three messages wait unread");
        // B holds a reservation, so a second writer queues; the self-stall
        // deadline this sets wakes the driver from the lock's end.
        let mut first = std::boxed::Box::pin(btx.reserve());
        let Poll::Ready(Ok(permit)) = first.as_mut().poll(&mut Context::from_waker(&waker)) else {
            panic!("setup: the first reservation")
        };
        let mut second = std::boxed::Box::pin(btx.reserve());
        armed.0.store(true, std::sync::atomic::Ordering::SeqCst);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            second.as_mut().poll(&mut Context::from_waker(&waker)).is_ready()
        }));
        assert!(panicked.is_err(), "setup: the lock woke the driver during the second writer's poll");
        drop(second);
        drop(permit);
        // The queue is whole: a new writer takes the reservation at once.
        let mut third = std::boxed::Box::pin(btx.reserve());
        assert!(matches!(third.as_mut().poll(&mut Context::from_waker(&waker)), Poll::Ready(Ok(_))));
    }

    /// A session between two storages (the acceptor's is `storage`), its
    /// drivers to be polled by hand on a clock that stands still.
    fn session_by_hand(
        storage: Arc<Small>,
    ) -> (Pair, Pair, core::pin::Pin<std::boxed::Box<impl core::future::Future>>) {
        let config = StableConfig { max_message: 24, ..StableConfig::DEFAULT };
        let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
        let (a, ad) = Pair::initiator(Arc::new(Small::new()), config).unwrap();
        let (b, bd) = Pair::acceptor(storage, config).unwrap();
        let rng: rand_chacha::ChaCha8Rng = rand_chacha::rand_core::SeedableRng::seed_from_u64(7);
        let drivers = embassy_futures::join::join(ad.run(dialer, FrozenClock), bd.run(listener, rng, FrozenClock));
        (a, b, std::boxed::Box::pin(drivers))
    }

    /// Polls the drivers until `reserve` is ready (its room comes with the
    /// handshake), and returns its permit.
    fn permit_after_handshake<P>(
        drivers: &mut core::pin::Pin<std::boxed::Box<impl core::future::Future>>,
        reserve: &mut core::pin::Pin<std::boxed::Box<impl core::future::Future<Output = Result<P, crate::SendError>>>>,
    ) -> P {
        use core::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..100 {
            let _ = drivers.as_mut().poll(&mut cx);
            if let Poll::Ready(got) = reserve.as_mut().poll(&mut cx) {
                return got.unwrap();
            }
        }
        panic!("setup: the first reservation, after the handshake");
    }

    /// Hosts: a send with nobody waiting behind it keeps the reservation
    /// for the next `reserve` of any task (taken without the lock); with a
    /// writer waiting it is not kept, and the waiting writer's turn comes.
    // r[verify core.burst]
    #[cfg(feature = "std")]
    #[test]
    fn a_reservation_kept_by_a_send_goes_to_the_next_writer_unless_one_waits() {
        use super::sealed::Sealed;
        use core::future::Future;
        use core::task::{Context, Poll, Waker};
        let storage = Arc::new(Small::new());
        let (a, b, mut drivers) = session_by_hand(storage.clone());
        let (_a, (btx, _brx)) = (a, b.split());
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = std::boxed::Box::pin(btx.reserve());
        permit_after_handshake(&mut drivers, &mut first).send(Blob(1, &[1; 4])).unwrap();
        assert!(storage.early_permit().offered(), "the send kept the reservation");
        // Another writer's first poll takes it, and a third then waits.
        let mut second = std::boxed::Box::pin(btx.reserve());
        let Poll::Ready(Ok(permit)) = second.as_mut().poll(&mut cx) else { panic!("the kept reservation") };
        let mut third = std::boxed::Box::pin(btx.reserve());
        assert!(third.as_mut().poll(&mut cx).is_pending(), "a reservation is out");
        permit.send(Blob(2, &[2; 4])).unwrap();
        assert!(!storage.early_permit().offered(), "a writer waits: not kept");
        assert!(matches!(third.as_mut().poll(&mut cx), Poll::Ready(Ok(_))), "the waiting writer's turn");
    }

    /// Hosts: a reservation kept by a send is taken back when the session
    /// ends, so the next `reserve` answers the end, as without it.
    #[cfg(feature = "std")]
    #[test]
    fn a_reservation_kept_by_a_send_is_taken_back_at_the_end() {
        use super::sealed::Sealed;
        use core::future::Future;
        use core::task::{Context, Poll, Waker};
        let storage = Arc::new(Small::new());
        let (a, b, mut drivers) = session_by_hand(storage.clone());
        let (_a, (btx, _brx)) = (a, b.split());
        let mut first = std::boxed::Box::pin(btx.reserve());
        permit_after_handshake(&mut drivers, &mut first).send(Blob(1, &[1; 4])).unwrap();
        assert!(storage.early_permit().offered(), "setup: the send kept the reservation");
        storage.lock(|l| l.session.state.end(crate::SessionError::SessionLost));
        assert!(!storage.early_permit().offered(), "taken back");
        let mut next = std::boxed::Box::pin(btx.reserve());
        assert!(matches!(
            next.as_mut().poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Err(crate::SendError::Session(crate::SessionError::SessionLost)))
        ));
    }

    std::thread_local! {
        /// A future a [`DroppingWaker`]'s wake drops.
        static DROPPED_BY_WAKE: core::cell::RefCell<Option<std::boxed::Box<dyn core::any::Any>>> =
            const { core::cell::RefCell::new(None) };
    }

    /// A waker whose wake drops its task's future (as an executor that
    /// shuts down may), inside the lock that runs the wake.
    struct DroppingWaker;
    impl std::task::Wake for DroppingWaker {
        fn wake(self: Arc<Self>) {
            drop(DROPPED_BY_WAKE.with(|f| f.borrow_mut().take()));
        }
    }

    /// A counting waker.
    struct CountingWaker(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Two writers wait; the first one's wake drops its future inside the
    /// lock that wakes it. Its turn goes to the second (it was a stop of
    /// the program: the future could not reach the queue to pass it on).
    // r[verify core.burst]
    #[test]
    fn a_writer_dropped_by_its_own_wake_passes_its_turn_on() {
        use core::future::Future;
        use core::task::{Context, Poll, Waker};
        let (a, b, mut drivers) = session_by_hand(Arc::new(Small::new()));
        let (_a, (btx, _brx)) = (a, b.split());
        // The future the wake drops lives in a thread-local: it must not
        // borrow, so the half lives on the heap until the test's end.
        let leaked = std::boxed::Box::into_raw(std::boxed::Box::new(btx));
        // SAFETY: from `Box::into_raw`, freed only at the end of the test.
        let btx: &'static _ = unsafe { &*leaked };
        // A permit held (there is room once the handshake is done), two
        // writers queued behind it.
        let mut first = std::boxed::Box::pin(btx.reserve());
        let mut dropping = std::boxed::Box::pin(btx.reserve());
        let counted = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
        let mut second = std::boxed::Box::pin(btx.reserve());
        let permit = permit_after_handshake(&mut drivers, &mut first);
        let dropping_waker = Waker::from(Arc::new(DroppingWaker));
        assert!(dropping.as_mut().poll(&mut Context::from_waker(&dropping_waker)).is_pending());
        let counted_waker = Waker::from(counted.clone());
        assert!(second.as_mut().poll(&mut Context::from_waker(&counted_waker)).is_pending());
        DROPPED_BY_WAKE.with(|f| *f.borrow_mut() = Some(std::boxed::Box::new(dropping)));
        // The reservation ends: the first writer's turn, whose wake drops it.
        drop(permit);
        assert!(DROPPED_BY_WAKE.with(|f| f.borrow().is_none()), "the wake dropped the future");
        assert_eq!(counted.0.load(std::sync::atomic::Ordering::SeqCst), 1, "the turn passed to the second");
        assert!(matches!(second.as_mut().poll(&mut Context::from_waker(&counted_waker)), Poll::Ready(Ok(_))));
        drop((first, second));
        // SAFETY: `leaked` came from `Box::into_raw` above, and the futures
        // that borrowed it are gone.
        drop(unsafe { std::boxed::Box::from_raw(leaked) });
    }

    /// A writer's poll takes the reservation, and a wake the lock runs
    /// after it panics: dropping the future ends the reservation, so the
    /// next writer gets its turn (without it, every later writer waited
    /// behind a reservation nobody held).
    // r[verify core.burst]
    #[test]
    fn a_reservation_whose_wake_panics_is_ended_by_the_drop() {
        use core::future::Future;
        use core::task::{Context, Poll, Waker};
        let storage = Arc::new(Small::new());
        let (a, b, mut drivers) = session_by_hand(storage.clone());
        let noop = Waker::noop();
        let (_a, (btx, _brx)) = (a, b.split());
        let mut first = std::boxed::Box::pin(btx.reserve());
        let permit = permit_after_handshake(&mut drivers, &mut first);
        // Two writers wait behind it; the first's turn comes.
        let mut second = std::boxed::Box::pin(btx.reserve());
        let mut third = std::boxed::Box::pin(btx.reserve());
        assert!(second.as_mut().poll(&mut Context::from_waker(noop)).is_pending());
        assert!(third.as_mut().poll(&mut Context::from_waker(noop)).is_pending());
        drop(permit);
        // The second's poll will bring the driver's timer forward (a
        // writer waits): that wake panics.
        let armed = Arc::new(ArmedWaker(std::sync::atomic::AtomicBool::new(true)));
        let armed_waker = Waker::from(armed.clone());
        super::sealed::Sealed::lock(&*storage, |l| {
            l.timer_unchanged();
            l.wakers.driver.register(&armed_waker);
            *l.timer_at = super::TimerAt::NONE;
        });
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            second.as_mut().poll(&mut Context::from_waker(noop)).is_ready()
        }));
        assert!(panicked.is_err(), "setup: the lock woke the driver after the second took the reservation");
        drop(second);
        let counted = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
        let counted_waker = Waker::from(counted.clone());
        let _ = third.as_mut().poll(&mut Context::from_waker(&counted_waker));
        assert!(
            matches!(third.as_mut().poll(&mut Context::from_waker(&counted_waker)), Poll::Ready(Ok(_))),
            "the third writer gets the reservation"
        );
    }

    /// Inside the storage's lock (what a waker or an encoder it runs
    /// sees), `try_lock` declines instead of panicking: a queued writer's
    /// drop there stops the program rather than leave its place linked.
    #[test]
    fn the_lock_is_not_taken_again_inside_itself() {
        use super::sealed::Sealed;
        let storage = Small::new();
        assert_eq!(storage.try_lock(|_| 1), Some(1));
        assert_eq!(storage.lock(|_| storage.try_lock(|_| 2)), None);
    }
}
