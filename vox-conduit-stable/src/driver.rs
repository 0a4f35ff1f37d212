//! `StableDriver`: the future that runs a stable conduit. Plumbing only:
//! it takes links from a link source, moves frames between them and the
//! session core ([`crate::session`]), and tells the core the time from the
//! injected [`Clock`].

use crate::session::{Detach, Kind, Outgoing};
use crate::stable_storage::{Locked, StableStore, TimerAt};
use crate::wire::{KEY_LEN, ResumeKey};
use crate::{ConfigError, SessionError};
use core::future::Future;
use core::future::poll_fn;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use core::task::Poll;
use embassy_futures::select::{Either, Either3, select, select3};
use rand_core::CryptoRng;
use vox_types::{
    Clock, Instant, Link, LinkError, LinkRx, LinkSource, LinkTx, LinkTxPermit, MsgFamily, SessionRole, StorageRef,
    WriteSlot,
};

/// Role marker of a driver that dials: [`StableDriver::run`] needs no
/// random numbers (only the acceptor makes resume keys).
pub struct Initiator;

/// Role marker of a driver that listens: [`StableDriver::run`] takes a
/// CSPRNG for resume keys.
pub struct Acceptor;

/// The role a driver's type stands for, known at compile time: the core
/// then drops the other role's code (an initiator firmware carries no
/// acceptor handshake).
pub trait Role: sealed_role::Sealed {
    /// The role.
    const ROLE: SessionRole;
    /// What the driver keeps to make resume keys: nothing for an
    /// initiator (no RAM on a device), the session's tag for an acceptor.
    #[doc(hidden)]
    type KeyTag: Copy + Default;
}

mod sealed_role {
    pub trait Sealed {}
    impl Sealed for super::Initiator {}
    impl Sealed for super::Acceptor {}
}

impl Role for Initiator {
    const ROLE: SessionRole = SessionRole::Initiator;
    type KeyTag = ();
}

impl Role for Acceptor {
    const ROLE: SessionRole = SessionRole::Acceptor;
    /// `Some(tag)`: the session's tag opens every key it issues (a
    /// `StableAcceptor` routes resumes by it); `None`: all 16 bytes random.
    type KeyTag = Option<u32>;
}

/// Runs a [`StableConduit`](crate::StableConduit): spawn it (embassy,
/// tokio) or join it with the application. `R` is the role
/// ([`Initiator`] or [`Acceptor`]).
pub struct StableDriver<F, S: StableStore + 'static, R: Role> {
    storage: StorageRef<S>,
    key_tag: R::KeyTag,
    _role: PhantomData<(fn() -> F, R)>,
}

impl<F: MsgFamily, S: StableStore + 'static> StableDriver<F, S, Initiator> {
    /// Runs the session: takes links from `source` one after another until
    /// both directions are closed and acknowledged (`Ok`), or the session
    /// ends ([`SessionError::SessionLost`], a refusal, an exhausted
    /// source). `clock` times acks, keepalives and the silence timeout.
    ///
    /// Lend the source (`run(&mut source, clock)`) to keep it for the
    /// next session: a listener, dialer or serial port then serves
    /// sessions one after another.
    pub fn run<L: LinkSource, C: Clock + Clone>(
        self,
        source: L,
        clock: C,
    ) -> impl Future<Output = Result<(), SessionError>> {
        // Not an `async fn`: it would keep its arguments twice in the
        // future's RAM (as arguments and as the body's locals).
        self.drive(source, || None, clock)
    }
}

impl<F: MsgFamily, S: StableStore + 'static> StableDriver<F, S, Acceptor> {
    /// Every key this session issues opens with `tag` (see
    /// [`acceptor_core::KEY_TAG_LEN`](crate::acceptor_core::KEY_TAG_LEN)).
    #[cfg(feature = "alloc")]
    pub(crate) fn with_key_tag(mut self, tag: u32) -> Self {
        self.key_tag = Some(tag);
        self
    }

    /// Runs the session (see the initiator's `run`); `rng` makes a new
    /// resume key for every attachment.
    // r[impl stable.resume-key]
    pub fn run<L: LinkSource, R: CryptoRng, C: Clock + Clone>(
        self,
        source: L,
        mut rng: R,
        clock: C,
    ) -> impl Future<Output = Result<(), SessionError>> {
        let tag = self.key_tag;
        let keys = move || {
            let mut key: ResumeKey = [0; KEY_LEN];
            rng.fill_bytes(&mut key);
            if let Some(tag) = tag {
                crate::acceptor_core::tag_key(&mut key, tag);
            }
            Some(key)
        };
        self.drive(source, keys, clock)
    }
}

/// What the driver knows within one poll.
///
/// Its time: the clock read at most once per poll (every frame handled in
/// one poll happened at the same instant), kept in the storage's `now`. A
/// clock read costs as much as handling a frame on a host (a system
/// call's worth), so it is not done per frame.
///
/// What the timer's lock saw at the start of the poll (with the driver's
/// waker registered under it), so that the attachment's transmitter and
/// detach watch, polled next, need no lock of their own to find nothing
/// to do: on a host, a lock is two atomic operations on one process-wide
/// lock (the stable_vs_bare bench took 4.98 locks per message with them,
/// 4.60 without). Each is used once, only in the poll that saw it, and
/// forgotten when a link is attached; a change after it wakes the driver
/// (a detach found while receiving is taken in that next poll).
struct PollState<'c, C> {
    clock: &'c C,
    /// `now` was read during this poll.
    fresh: AtomicBool,
    /// What the timer's lock saw in this poll: [`SEEN_FRAME`],
    /// [`SEEN_NO_FRAME`], [`SEEN_NO_DETACH`] bits, each used once.
    seen: AtomicU8,
}

/// Seen in this poll: a frame waits to be sent.
const SEEN_FRAME: u8 = 1;
/// Seen in this poll: no frame waits to be sent.
const SEEN_NO_FRAME: u8 = 2;
/// Seen in this poll: no detach waits.
const SEEN_NO_DETACH: u8 = 4;

impl<'c, C: Clock> PollState<'c, C> {
    fn new(clock: &'c C) -> Self {
        Self { clock, fresh: AtomicBool::new(false), seen: AtomicU8::new(0) }
    }

    /// A new poll of the driver: the next reading is fresh, and nothing
    /// has been seen.
    fn new_poll(&self) {
        self.fresh.store(false, Ordering::Relaxed);
        self.forget_seen();
    }

    /// Forgets what was seen (the core changed under a lock since).
    fn forget_seen(&self) {
        self.seen.store(0, Ordering::Relaxed);
    }

    /// Notes what the core wants now, under a lock that registered the
    /// driver's waker.
    fn see(&self, l: &mut Locked<'_>) {
        let frame = if l.session.wants_transmit() { SEEN_FRAME } else { SEEN_NO_FRAME };
        let detach = if l.session.state.has_detach() { 0 } else { SEEN_NO_DETACH };
        self.seen.store(frame | detach, Ordering::Relaxed);
    }

    /// Hosts: notes, under the lock of a burst that found no frame left,
    /// that none waits, for the transmitter's next look in this poll, if
    /// the driver's waker is still registered (by the timers' lock, in
    /// this poll: a frame from now on wakes it). A wake since took it: the
    /// next look asks under a lock of its own, which registers it again.
    #[cfg(feature = "std")]
    fn see_no_frame(&self, l: &mut Locked<'_>) {
        if l.wakers.driver.occupied() {
            let detach = if l.session.state.has_detach() { 0 } else { SEEN_NO_DETACH };
            self.seen.store(SEEN_NO_FRAME | detach, Ordering::Relaxed);
        }
    }

    /// The bits of `mask` seen in this poll, taken (seen no more).
    fn take_seen(&self, mask: u8) -> u8 {
        // Load and store, not a read-modify-write: the driver is one
        // task, and small targets (thumbv6m) have no atomic one.
        let seen = self.seen.load(Ordering::Relaxed);
        self.seen.store(seen & !mask, Ordering::Relaxed);
        seen & mask
    }

    /// The time of this poll, read once (under the storage's lock).
    fn now(&self, l: &mut Locked<'_>) -> u64 {
        if !self.fresh.load(Ordering::Relaxed) {
            *l.now = self.clock.now().as_millis();
            self.fresh.store(true, Ordering::Relaxed);
        }
        *l.now
    }
}

/// Hands the core's next frame to `permit`; `false` when the attachment
/// or session ended on it (a link error, a link too small).
fn transmit_one<P: LinkTxPermit>(l: &mut Locked<'_>, now: u64, kind: Kind, permit: P) -> bool {
    match l.session.transmit_kind(now, kind, |out| write_out(permit, out)) {
        None => false,
        Some(Ok(())) => true,
        Some(Err(LinkError::TooLarge { len, max })) => {
            let e = ConfigError::LinkTooSmall { needed: len, max_payload: max };
            l.session.state.end(SessionError::Config(e));
            false
        }
        Some(Err(e)) => {
            l.session.link_failed(e);
            false
        }
    }
}

/// Polls `fut` once, with a waker that does nothing: for a reservation
/// that is taken only if it is ready now.
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = core::pin::pin!(fut);
    fut.as_mut().poll(&mut core::task::Context::from_waker(core::task::Waker::noop()))
}

/// Encodes `out` into the permit's slot, exactly sized, and commits it.
pub(crate) fn write_out<P: LinkTxPermit>(permit: P, out: &Outgoing<'_>) -> Result<(), LinkError> {
    let mut slot = permit.alloc(out.len())?;
    out.encode(slot.as_mut_slice())?;
    slot.commit();
    Ok(())
}

impl<F, S: StableStore + 'static, R: Role> Drop for StableDriver<F, S, R> {
    fn drop(&mut self) {
        self.storage.part_gone(crate::stable_storage::Part::Driver);
    }
}

impl<F: MsgFamily, S: StableStore + 'static, R: Role> StableDriver<F, S, R> {
    pub(crate) fn new(storage: StorageRef<S>) -> Self {
        Self { storage, key_tag: R::KeyTag::default(), _role: PhantomData }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Locked<'_>) -> T) -> T {
        self.storage.lock(f)
    }

    /// Ready once the session is over (checked and the waker registered
    /// under one lock: no outcome slips in between).
    fn over(&self) -> impl Future<Output = Result<(), SessionError>> {
        // `None` (a link may come) is not asked for: never returned.
        poll_fn(move |cx| match self.poll_over(cx, false) {
            Poll::Ready(Some(outcome)) => Poll::Ready(outcome),
            _ => Poll::Pending,
        })
    }

    /// Ready when the core lets a link be attached (no backoff after a
    /// busy acceptor, or its timer ended it), or with the outcome if the
    /// session is over.
    fn backoff(&self) -> impl Future<Output = Option<Result<(), SessionError>>> {
        poll_fn(move |cx| self.poll_over(cx, true))
    }

    /// `over` and `backoff` in one (one copy of the lock): ready with the
    /// outcome once the session is over, or with `None` when `or_attach`
    /// and a link may be attached.
    fn poll_over(&self, cx: &core::task::Context<'_>, or_attach: bool) -> Poll<Option<Result<(), SessionError>>> {
        self.with(|l| {
            // Once the session is over: ended, or complete. The error is
            // copied straight into the answer.
            if let Some(e) = l.session.state.ended() {
                return Poll::Ready(Some(Err(*e)));
            }
            if l.session.state.is_complete() {
                return Poll::Ready(Some(Ok(())));
            }
            if or_attach && l.session.state.attach_not_before().is_none() {
                return Poll::Ready(None);
            }
            l.wakers.driver.register(cx.waker());
            Poll::Pending
        })
    }

    /// A plain function returning an `async move` block: an `async fn`
    /// keeps its arguments twice in the future (as arguments, and moved
    /// into the body's locals).
    fn drive<L: LinkSource, C: Clock + Clone>(
        self,
        mut source: L,
        mut keys: impl FnMut() -> Option<ResumeKey>,
        clock: C,
    ) -> impl Future<Output = Result<(), SessionError>> {
        async move {
            // The core's time is the clock's, in milliseconds; the session's
            // silence is counted from now.
            {
                let start = clock.now().as_millis();
                self.with(|l| {
                    *l.now = start;
                    l.session.state.start_clock(start);
                });
            }
            let time = PollState::new(&clock);
            let serve = async {
                loop {
                    // The outcome if the session is over, else the core's
                    // backoff after a busy acceptor, if any (the timer
                    // ends it).
                    if let Some(outcome) = self.backoff().await {
                        return outcome;
                    }
                    let link = match select(source.next_link(), self.over()).await {
                        Either::First(Ok(link)) => Some(link),
                        // A source that gave up (a dialer's backoff ran out) is
                        // as final as a closed one.
                        Either::First(Err(LinkError::Closed | LinkError::GaveUp { .. })) => {
                            self.with(|l| l.session.state.source_closed());
                            continue;
                        }
                        Either::First(Err(_)) => None,
                        Either::Second(outcome) => return outcome,
                    };
                    let Some(link) = link else {
                        // Slept outside the `match`: its value would be kept
                        // across the sleep, in the future's RAM.
                        let retry = self.with(|l| l.session.state.config().retry_delay_ms);
                        clock.sleep_until(clock.now().add_millis(u64::from(retry))).await;
                        continue;
                    };
                    let key = keys();
                    // The largest message is read under the same lock.
                    let max_message = self.with(|l| {
                        let now = time.now(l);
                        l.session.attach(now, key);
                        // What the timer's lock saw before the link came
                        // is stale: the attachment's first poll asks.
                        time.forget_seen();
                        l.session.state.config().max_message
                    });
                    // One attachment on `link`, until the core detaches it
                    // or the link fails (in this future: a future of its
                    // own would cost a copy of the link into it).
                    let _why = {
                        let (tx, mut rx) = link.split();
                        // A data frame must fit the link: refused before
                        // anything is sent.
                        // r[impl stable.config.check]
                        let data = max_message + crate::wire::MAX_HEADER;
                        let needed = data.max(crate::wire::MAX_CONTROL_FRAME);
                        let max_payload = tx.max_payload();
                        if needed > max_payload {
                            let e = ConfigError::LinkTooSmall { needed, max_payload };
                            self.with(|l| l.session.state.end(SessionError::Config(e)));
                            Detach::Ended
                        } else {
                            let sending = async {
                                // A frame is known to wait (asked under the
                                // last frame's lock): no lock is taken just to
                                // ask again.
                                let mut more = false;
                                loop {
                                    if !more {
                                        poll_fn(|cx| match time.take_seen(SEEN_FRAME | SEEN_NO_FRAME) {
                                            SEEN_FRAME => Poll::Ready(()),
                                            SEEN_NO_FRAME => Poll::Pending,
                                            _ if self.wants_transmit(cx) => Poll::Ready(()),
                                            _ => Poll::Pending,
                                        })
                                        .await;
                                    }
                                    match tx.reserve().await {
                                        Ok(permit) => more = self.burst(&tx, permit, &time),
                                        Err(e) => return self.with(|l| l.session.link_failed(e)),
                                    }
                                }
                            };
                            // Every payload the link holds is handed to the
                            // core under one storage lock; the first is awaited
                            // outside it, so a quiet link costs no lock, and the
                            // rest are read in place (no backing to count: on a
                            // host, two atomic operations fewer per payload).
                            let receiving = poll_fn(|cx| {
                                let first = core::task::ready!(rx.poll_recv(cx));
                                self.with(|l| {
                                    let now = time.now(l);
                                    let storage = &*self.storage;
                                    // One closure for both places: one copy
                                    // of the core's receive code.
                                    let store = |at: usize, msg: &[u8]| storage.write_received(at, msg);
                                    let mut got = first.map(|payload| {
                                        payload.map(|payload| {
                                            l.session.on_receive_as(R::ROLE, now, payload.as_bytes(), store)
                                        })
                                    });
                                    loop {
                                        // The link's end is its failure.
                                        if let Err(e) = got.and_then(|got| got.ok_or(LinkError::Closed)) {
                                            l.session.link_failed(e);
                                            return Poll::Ready(());
                                        }
                                        match rx.poll_recv_in_place(cx, |bytes| {
                                            l.session.on_receive_as(R::ROLE, now, bytes, store)
                                        }) {
                                            Poll::Ready(next) => got = next,
                                            Poll::Pending => break,
                                        }
                                    }
                                    // Hosts: what the frames asked of the
                                    // transmitter and the detach watch, polled
                                    // next, is seen here instead of waking this
                                    // task again (see `see_no_frame`).
                                    #[cfg(feature = "std")]
                                    if l.wakers.driver.occupied() {
                                        l.session.state.skip_transmit_wake();
                                        time.see(l);
                                    }
                                    Poll::Pending
                                })
                            });
                            let detached = poll_fn(|cx| {
                                if time.take_seen(SEEN_NO_DETACH) != 0 {
                                    return Poll::Pending;
                                }
                                self.with(|l| match l.session.state.take_detach() {
                                    Some(why) => Poll::Ready(why),
                                    None => {
                                        l.wakers.driver.register(cx.waker());
                                        Poll::Pending
                                    }
                                })
                            });
                            // Hosts: received frames first, and what they ask
                            // the transmitter for goes out in the same poll
                            // (small targets keep one copy of the look).
                            #[cfg(feature = "std")]
                            let attachment = select3(receiving, sending, detached);
                            #[cfg(not(feature = "std"))]
                            let attachment = select3(sending, receiving, detached);
                            match attachment.await {
                                Either3::Third(why) => why,
                                // The link failed. Why the core detached is
                                // wanted for the log only: the next
                                // attachment starts without it anyway.
                                #[cfg(feature = "defmt")]
                                Either3::First(()) | Either3::Second(()) => self
                                    .with(|l| l.session.state.take_detach())
                                    .unwrap_or(Detach::LinkFailed(LinkError::Closed)),
                                #[cfg(not(feature = "defmt"))]
                                Either3::First(()) | Either3::Second(()) => Detach::LinkFailed(LinkError::Closed),
                            }
                        }
                    };
                    match _why {
                        Detach::Finished | Detach::Ended => {}
                        _ => state_warn!("stable: attachment ended: {}", _why),
                    }
                }
            };
            let mut serve = core::pin::pin!(serve);
            // The timer's state: the deadline it is armed for (`None`: to
            // be armed), and its sleep.
            let mut armed = None;
            let mut sleep = core::pin::pin!(None);
            let result = poll_fn(|cx| {
                time.new_poll();
                // The timers first: a keepalive found due is sent by
                // `serve` in the same poll (one wake-up per keepalive, not
                // two).
                self.poll_timers(&time, &mut armed, sleep.as_mut(), |at| clock.sleep_until(at), cx);
                serve.as_mut().poll(cx)
            })
            .await;
            match &result {
                Ok(()) => state_info!("stable: session finished"),
                Err(_e) => state_warn!("stable: session ended: {}", _e),
            }
            result
        }
    }

    /// The timer: sleeps until the core's next deadline, or until an
    /// event brings one forward, then lets the core act on the clock's
    /// time, and arms for the next. No fixed tick: an idle session wakes
    /// only when something is due (a keepalive, a delayed ack, the silence
    /// timeout), and timers never drift, as every deadline is a time on
    /// the clock. Pending always (`cx`'s waker registered).
    // r[impl core.deadline]
    fn poll_timers<C: Clock, Z: Future<Output = ()>>(
        &self,
        time: &PollState<'_, C>,
        armed: &mut Option<u64>,
        mut sleep: core::pin::Pin<&mut Option<Z>>,
        sleep_until: impl Fn(Instant) -> Z,
        cx: &mut core::task::Context<'_>,
    ) {
        loop {
            let at = match *armed {
                Some(at) => at,
                None => {
                    let due = self.with(|l| {
                        let due = l.session.next_deadline_as(R::ROLE);
                        *l.timer_at = TimerAt::at(due);
                        due
                    });
                    if due != Instant::MAX.as_millis() {
                        sleep.set(Some(sleep_until(Instant::from_millis(due))));
                    }
                    *armed = Some(due);
                    due
                }
            };
            let slept = sleep.as_mut().as_pin_mut().is_some_and(|s| s.poll(cx).is_ready());
            // Woken when an event sets an earlier deadline than `at`.
            if !slept
                && self.with(|l| {
                    let later = l.timer_at.get() >= at;
                    if later {
                        l.wakers.driver.register(cx.waker());
                        time.see(l);
                    }
                    later
                })
            {
                return;
            }
            sleep.set(None);
            *armed = None;
            self.with(|l| {
                let now = time.now(l);
                l.session.on_tick_as(R::ROLE, now);
                // `serve` is polled right after this, in the same task:
                // its transmitter sees what is due without a wake.
                l.session.state.skip_transmit_wake();
            });
        }
    }

    /// Whether the core has a frame to send; `cx`'s waker registered when
    /// not.
    fn wants_transmit(&self, cx: &core::task::Context<'_>) -> bool {
        self.with(|l| {
            let wants = l.session.wants_transmit();
            if !wants {
                l.wakers.driver.register(cx.waker());
            }
            wants
        })
    }

    /// Sends the core's frames on `permit` and the link's next permits.
    /// A burst goes out under one storage lock: after each frame, the
    /// next link permit is taken if the link has room now (a reservation
    /// that would wait is dropped, which reserves nothing, and awaited by
    /// the caller instead). `true` when a frame still waits for room.
    fn burst<'t, T: LinkTx, C: Clock>(&self, tx: &'t T, permit: T::Permit<'t>, time: &PollState<'_, C>) -> bool {
        self.with(|l| {
            let now = time.now(l);
            let mut permit = permit;
            let Some(mut kind) = l.session.poll_outgoing() else {
                #[cfg(feature = "std")]
                time.see_no_frame(l);
                return false;
            };
            loop {
                if !transmit_one(l, now, kind, permit) {
                    return false;
                }
                kind = match l.session.poll_outgoing() {
                    Some(kind) => kind,
                    None => {
                        // Hosts: the transmitter's next look needs no lock.
                        #[cfg(feature = "std")]
                        time.see_no_frame(l);
                        return false;
                    }
                };
                permit = match poll_once(tx.reserve()) {
                    Poll::Ready(Ok(next)) => next,
                    Poll::Ready(Err(e)) => {
                        l.session.link_failed(e);
                        return false;
                    }
                    Poll::Pending => return true,
                };
            }
        })
    }
}
