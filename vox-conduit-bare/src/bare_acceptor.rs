//! `BareAcceptor`: bare conduits from a listener (any link source), with a
//! runner that handshakes many connections at once, each under a
//! deadline, and holds at most a fixed number of connections.
//!
//! # Policy
//!
//! - Up to `PENDING` prologue exchanges run at once, each for at most
//!   `timeout_ms`, polled by readiness; a new connection takes the place
//!   of the oldest pending one (which has sent nothing valid: a bare
//!   handshake ends with its first frame). A silent, slow or
//!   garbage-sending connection delays no other.
//! - The acceptor reads the peer's prologue first and answers it only
//!   once the connection is admitted.
//! - At most `max_connections` accepted conduits are held (one counts
//!   until both its halves are dropped, or it is evicted); handshakes do
//!   not count, they are bounded by `PENDING`. So connections that send
//!   nothing never hold the cap: they hold only pending places, which
//!   newcomers take from them.
//! - Silent peers cannot hold the cap either once accepted: when it is
//!   full, a newcomer that has presented a valid prologue takes the place
//!   of the held connection idle the longest (nothing received by its
//!   application), if that one has been idle for at least the
//!   minimum idle time ([`DEFAULT_MIN_IDLE_MS`], or
//!   [`BareAcceptorRunner::evict_idle_after`]). The evicted conduit's
//!   `recv` and `reserve` fail at once with `Link(Closed)`, waiting ones
//!   included (counted as `evicted_idle`); its link closes when the
//!   application drops it. A client that may stay quiet longer than the
//!   minimum idle time must send something before it to keep its place.
//!   With no connection idle that long the newcomer is closed without an
//!   answer (counted as `over_cap`). Links open stay at most
//!   `max_connections + PENDING` plus evicted conduits the application
//!   has not dropped yet.
//! - A refused prologue (another schema, mode, version or role) is
//!   answered with ours, so the peer gets the typed refusal; the runner
//!   counts it.
//! - At most 4 accepted conduits wait for [`BareAcceptor::accept`]; a
//!   conduit beyond that is closed (counted as `busy`).

use crate::{BareConduit, BareRx, BareTx, ConnectError};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{Future, poll_fn};
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::waitqueue::{AtomicWaker, WakerRegistration};
use heapless::Deque;
use vox_types::{
    AcceptEvent, Admission, Backing, Clock, ConduitAcceptor, ConduitMode, HandshakeProgress, Link, LinkError, LinkRx,
    LinkSource, LinkTx, MaybeSend, MsgFamily, PendingHandshakes, Prologue, SessionRole, send_prologue,
};

/// Accepted conduits waiting for `accept` at most.
const QUEUE: usize = 4;

/// The minimum idle time after which a held connection may be evicted
/// for a newcomer when the cap is full: 10 s.
pub const DEFAULT_MIN_IDLE_MS: u32 = 10_000;

/// What the runner did with the connections it got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BareAcceptorStats {
    /// Conduits handed to `accept`.
    pub accepted: u64,
    /// Connections closed without an answer after their prologue:
    /// `max_connections` were held and none idle long enough to make
    /// room.
    pub over_cap: u64,
    /// Handshakes with no prologue within the deadline.
    pub timed_out: u64,
    /// Handshakes dropped to make room for a newer connection (all
    /// `PENDING` places were taken).
    pub evicted: u64,
    /// Held connections closed to make room for a newcomer with a valid
    /// prologue: they had received nothing for the minimum idle time.
    pub evicted_idle: u64,
    /// Prologues refused (schema, mode, version, role) or garbage.
    pub refused: u64,
    /// Conduits closed because `accept` was not keeping up.
    pub busy: u64,
    /// Accepted conduits held now (each counts until dropped or evicted).
    pub connections: usize,
}

struct Shared<C> {
    queue: Deque<C, QUEUE>,
    stats: BareAcceptorStats,
    closed: bool,
    waker: WakerRegistration,
}

type SharedRef<C> = Arc<Mutex<CriticalSectionRawMutex, RefCell<Shared<C>>>>;

/// Links held now, shared by the runner and every [`Connection`].
type Held = Arc<Mutex<CriticalSectionRawMutex, Cell<usize>>>;

/// Takes one of the `max` places, if one is free.
fn take_place(held: &Held, max: usize) -> bool {
    held.lock(|h| {
        let free = h.get() < max;
        if free {
            h.set(h.get() + 1);
        }
        free
    })
}

/// The acceptor's clock, in milliseconds, for the connections' activity.
type Now = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A connection, not (yet) counted against the cap.
const UNCOUNTED: u8 = 0;
/// A connection counted against the cap.
const COUNTED: u8 = 1;
/// A connection evicted for a newcomer (no longer counted).
const EVICTED: u8 = 2;

/// One connection, shared by its link's halves and the runner: whether it
/// counts against the cap, when it was last active, and its eviction.
struct Connection {
    held: Held,
    state: AtomicU8,
    last_active_ms: AtomicU64,
    /// The application's `recv` and `reserve`, woken by an eviction.
    rx_waker: AtomicWaker,
    tx_waker: AtomicWaker,
    now: Now,
}

impl Connection {
    fn touch(&self) {
        self.last_active_ms.store((self.now)(), Ordering::Relaxed);
    }

    fn evicted(&self) -> bool {
        self.state.load(Ordering::Acquire) == EVICTED
    }

    /// Counts it against the cap (a place was taken for it).
    fn count(&self) {
        self.state.store(COUNTED, Ordering::Release);
    }

    /// Evicts it if it is counted: gives its place back and wakes its
    /// application.
    fn evict(&self) -> bool {
        let was = self.state.compare_exchange(COUNTED, EVICTED, Ordering::AcqRel, Ordering::Acquire);
        if was.is_ok() {
            self.held.lock(|h| h.set(h.get().saturating_sub(1)));
            self.rx_waker.wake();
            self.tx_waker.wake();
        }
        was.is_ok()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if *self.state.get_mut() == COUNTED {
            self.held.lock(|h| h.set(h.get().saturating_sub(1)));
        }
    }
}

/// A link that counts as held until both its halves are dropped (or it is
/// evicted: then its halves fail with `Link(Closed)`).
pub struct CountedLink<L> {
    link: L,
    conn: Arc<Connection>,
}

/// Sending half of a [`CountedLink`].
pub struct CountedTx<T> {
    tx: T,
    conn: Arc<Connection>,
}

/// Receiving half of a [`CountedLink`].
pub struct CountedRx<R> {
    rx: R,
    conn: Arc<Connection>,
}

impl<L: Link> Link for CountedLink<L> {
    type Tx = CountedTx<L::Tx>;
    type Rx = CountedRx<L::Rx>;

    fn split(self) -> (Self::Tx, Self::Rx) {
        let (tx, rx) = self.link.split();
        (CountedTx { tx, conn: self.conn.clone() }, CountedRx { rx, conn: self.conn })
    }
}

impl<T: LinkTx> LinkTx for CountedTx<T> {
    type Permit<'a>
        = T::Permit<'a>
    where
        Self: 'a;

    async fn reserve(&self) -> Result<Self::Permit<'_>, LinkError> {
        // A wait for room ends at an eviction too.
        let evicted = poll_fn(|cx| {
            self.conn.tx_waker.register(cx.waker());
            match self.conn.evicted() {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        });
        match select(evicted, self.tx.reserve()).await {
            Either::First(()) => Err(LinkError::Closed),
            Either::Second(permit) => permit,
        }
    }

    fn max_payload(&self) -> usize {
        self.tx.max_payload()
    }

    async fn close(self) -> Result<(), LinkError> {
        self.tx.close().await
    }
}

impl<R: LinkRx> LinkRx for CountedRx<R> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Backing>, LinkError>> {
        if self.conn.evicted() {
            return Poll::Ready(Err(LinkError::Closed));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Ok(Some(frame))) => {
                self.conn.touch();
                Poll::Ready(Ok(Some(frame)))
            }
            Poll::Pending => {
                self.conn.rx_waker.register(cx.waker());
                // Evicted in between: say so now.
                match self.conn.evicted() {
                    true => Poll::Ready(Err(LinkError::Closed)),
                    false => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

/// A connection whose peer presented a valid prologue (ours not sent
/// yet: it goes out once the connection is admitted).
struct Presented<L: Link> {
    tx: CountedTx<L::Tx>,
    rx: CountedRx<L::Rx>,
    peer: Prologue,
}

/// Polls `fut` once, without waiting (a fresh link's first permit is
/// ready at once; a stuck link gets nothing).
fn poll_once<T>(fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = core::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(t) => Some(t),
        Poll::Pending => None,
    }
}

/// Sends `local` on `tx` if it can go at once.
fn send_prologue_now(tx: &impl LinkTx, local: &Prologue) -> bool {
    matches!(poll_once(send_prologue(tx, local)), Some(Ok(())))
}

/// Reads the peer's prologue within `timeout_ms` and checks it; a refused
/// one is answered with ours (the peer then finds the same mismatch).
async fn read_prologue<L: Link, D: Clock>(
    link: CountedLink<L>,
    local: Prologue,
    clock: D,
    timeout_ms: u32,
) -> (Result<Presented<L>, ConnectError>, Arc<Connection>) {
    let conn = link.conn.clone();
    let (tx, mut rx) = link.split();
    let deadline = clock.now() + core::time::Duration::from_millis(u64::from(timeout_ms));
    let first = match select(rx.recv(), clock.sleep_until(deadline)).await {
        Either::First(first) => first,
        Either::Second(()) => return (Err(ConnectError::TimedOut), conn),
    };
    let payload = match first {
        Ok(Some(payload)) => payload,
        Ok(None) => return (Err(ConnectError::PeerClosed), conn),
        Err(e) => return (Err(ConnectError::Link(e)), conn),
    };
    match Prologue::decode(payload.as_bytes()).and_then(|peer| local.check_peer(&peer).map(|()| peer)) {
        Ok(peer) => (Ok(Presented { tx, rx, peer }), conn),
        Err(e) => {
            // A peer of this protocol that we refuse is told why (it finds
            // the same mismatch in our prologue); garbage gets no answer.
            if e.is_refusal() {
                send_prologue_now(&tx, &local);
            }
            (Err(ConnectError::Refused(e)), conn)
        }
    }
}

/// The application's side: takes accepted bare conduits. Made with its
/// runner by [`BareAcceptor::new`].
// r[impl host.bare-acceptor]
pub struct BareAcceptor<L: Link, F: MsgFamily> {
    shared: SharedRef<BareConduit<CountedLink<L>, F>>,
    held: Held,
}

/// Milliseconds to wait after the link source failed (transiently)
/// before asking it again.
const SOURCE_RETRY_MS: u64 = 50;

/// The runner of a [`BareAcceptor`]: spawn it (or join it).
pub struct BareAcceptorRunner<S: LinkSource, F: MsgFamily, D, const PENDING: usize> {
    source: S,
    clock: D,
    timeout_ms: u32,
    max_connections: usize,
    shared: SharedRef<BareConduit<CountedLink<S::Link>, F>>,
    held: Held,
    min_idle_ms: Option<u32>,
}

/// What [`BareAcceptor::new`] makes.
pub type BareAcceptorParts<S, F, D, const PENDING: usize> =
    (BareAcceptor<<S as LinkSource>::Link, F>, BareAcceptorRunner<S, F, D, PENDING>);

impl<L, F> BareAcceptor<L, F>
where
    L: Link + MaybeSend + 'static,
    L::Tx: 'static,
    L::Rx: 'static,
    F: MsgFamily + 'static,
{
    /// An acceptor on `source` and its runner: `PENDING` handshakes at once,
    /// each within `timeout_ms` of `clock`, at most `max_connections` links
    /// held, a held connection idle for [`DEFAULT_MIN_IDLE_MS`] evicted
    /// for a newcomer when they all are (see the module's policy).
    ///
    /// ```
    /// use embassy_futures::select::{Either, select};
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use vox_conduit_bare::{BareAcceptor, BareConduit};
    /// use vox_link_embedded::sim::{SimClock, memory_link_source};
    /// use vox_types::{ConduitAcceptor, LinkSource, SessionRole};
    /// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
    /// # struct Ping(u32);
    /// # vox_types::msg_family!(PingFamily => Ping);
    ///
    /// let (mut dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
    /// // 4 handshakes at once, each within 1 s, at most 16 connections held.
    /// let (mut acceptor, runner) =
    ///     BareAcceptor::<_, PingFamily>::new::<_, _, 4>(listener, SimClock::new(), 1_000, 16);
    /// futures::executor::block_on(async {
    ///     let client = async {
    ///         let link = dialer.next_link().await.unwrap();
    ///         BareConduit::<_, PingFamily>::connect(link, SessionRole::Initiator).await
    ///     };
    ///     let serving = select(runner.run(), async { futures::join!(acceptor.accept(), client) });
    ///     let Either::Second((accepted, client)) = serving.await else { panic!("the runner stopped") };
    ///     assert!(accepted.is_ok() && client.is_ok());
    ///     assert_eq!(acceptor.stats().accepted, 1);
    /// });
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new<S, D, const PENDING: usize>(
        source: S,
        clock: D,
        timeout_ms: u32,
        max_connections: usize,
    ) -> BareAcceptorParts<S, F, D, PENDING>
    where
        S: LinkSource<Link = L>,
        D: Clock + Clone,
    {
        let shared = Arc::new(Mutex::new(RefCell::new(Shared {
            queue: Deque::new(),
            stats: BareAcceptorStats::default(),
            closed: false,
            waker: WakerRegistration::new(),
        })));
        let held: Held = Arc::new(Mutex::new(Cell::new(0)));
        let runner = BareAcceptorRunner {
            source,
            clock,
            timeout_ms,
            max_connections,
            shared: shared.clone(),
            held: held.clone(),
            min_idle_ms: Some(DEFAULT_MIN_IDLE_MS),
        };
        (Self { shared, held }, runner)
    }

    /// What the runner did so far.
    pub fn stats(&self) -> BareAcceptorStats {
        let connections = self.held.lock(Cell::get);
        BareAcceptorStats { connections, ..self.shared.lock(|s| s.borrow().stats) }
    }
}

impl<L, F> ConduitAcceptor for BareAcceptor<L, F>
where
    L: Link + MaybeSend,
    F: MsgFamily,
    BareConduit<CountedLink<L>, F>: vox_types::Conduit + MaybeSend,
    Self: MaybeSend,
{
    type Conduit = BareConduit<CountedLink<L>, F>;
    type Error = ConnectError;

    /// The next accepted conduit (its prologues exchanged);
    /// `Link(Closed)` once the runner stopped.
    fn accept(&mut self) -> impl Future<Output = Result<Self::Conduit, ConnectError>> + MaybeSend + '_ {
        poll_fn(|cx| {
            self.shared.lock(|s| {
                let mut s = s.borrow_mut();
                if let Some(c) = s.queue.pop_front() {
                    return Poll::Ready(Ok(c));
                }
                if s.closed {
                    return Poll::Ready(Err(ConnectError::Link(LinkError::Closed)));
                }
                s.waker.register(cx.waker());
                Poll::Pending
            })
        })
    }
}

impl<S: LinkSource, F: MsgFamily, D, const PENDING: usize> BareAcceptorRunner<S, F, D, PENDING> {
    /// Sets the minimum idle time after which a held connection may be
    /// evicted for a newcomer when the cap is full (`None`: never; a
    /// newcomer beyond the cap is closed without an answer).
    ///
    /// ```
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use vox_conduit_bare::BareAcceptor;
    /// use vox_link_embedded::sim::{SimClock, memory_link_source};
    /// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
    /// # struct Ping(u32);
    /// # vox_types::msg_family!(PingFamily => Ping);
    ///
    /// let (_dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 64>([]);
    /// let (_acceptor, runner) = BareAcceptor::<_, PingFamily>::new::<_, _, 4>(listener, SimClock::new(), 1_000, 16);
    /// // Devices report every 2 s: one silent for 30 s is gone.
    /// let _runner = runner.evict_idle_after(Some(30_000));
    /// ```
    pub fn evict_idle_after(mut self, min_idle_ms: Option<u32>) -> Self {
        self.min_idle_ms = min_idle_ms;
        self
    }
}

/// The held connection idle the longest, if idle for `min_idle_ms` at
/// `now`; forgets connections that are gone.
fn longest_idle(held: &mut Vec<Weak<Connection>>, now: u64, min_idle_ms: u32) -> Option<Arc<Connection>> {
    held.retain(|c| c.strong_count() > 0);
    held.iter()
        .filter_map(Weak::upgrade)
        .filter(|c| c.state.load(Ordering::Acquire) == COUNTED)
        .map(|c| (c.last_active_ms.load(Ordering::Relaxed), c))
        .filter(|(last, _)| now.saturating_sub(*last) >= u64::from(min_idle_ms))
        .min_by_key(|(last, _)| *last)
        .map(|(_, c)| c)
}

impl<S, F, D, const PENDING: usize> BareAcceptorRunner<S, F, D, PENDING>
where
    S: LinkSource,
    S::Link: MaybeSend + 'static,
    <S::Link as Link>::Tx: 'static,
    <S::Link as Link>::Rx: 'static,
    F: MsgFamily + 'static,
    D: Clock + Clone + Send + Sync + 'static,
{
    /// Runs until the link source closes.
    // r[impl bare.idle]
    pub async fn run(self) -> LinkError {
        let Self { mut source, clock, timeout_ms, max_connections, shared, held, min_idle_ms } = self;
        let local = Prologue::new(ConduitMode::Bare, SessionRole::Acceptor, F::FINGERPRINT);
        let now: Now = {
            let clock = clock.clone();
            Arc::new(move || clock.now().as_millis())
        };
        // A bare handshake ends with its first valid frame: a pending one
        // has presented nothing, and the oldest makes room for a newcomer.
        let handshake =
            |link: CountedLink<S::Link>, _: HandshakeProgress| read_prologue(link, local, clock.clone(), timeout_ms);
        let mut pending = PendingHandshakes::for_maker(&handshake, PENDING);
        // Accepted connections, for idle eviction.
        let mut accepted: Vec<Weak<Connection>> = Vec::new();
        let count = |f: fn(&mut BareAcceptorStats)| shared.lock(|s| f(&mut s.borrow_mut().stats));
        let ended = loop {
            match pending.next(&mut source).await {
                AcceptEvent::Link(Ok(link)) => {
                    // Counted only once admitted: a handshake holds a
                    // pending place, which newcomers take from the silent.
                    let conn = Arc::new(Connection {
                        held: held.clone(),
                        state: AtomicU8::new(UNCOUNTED),
                        last_active_ms: AtomicU64::new(now()),
                        rx_waker: AtomicWaker::new(),
                        tx_waker: AtomicWaker::new(),
                        now: now.clone(),
                    });
                    match pending.push_with(|progress| handshake(CountedLink { link, conn }, progress)) {
                        Admission::Admitted => {}
                        // All handshake places were taken: the oldest went.
                        Admission::EvictedSilent => count(|s| s.evicted += 1),
                        // Not for bare handshakes (none presents and waits).
                        Admission::Refused => count(|s| s.over_cap += 1),
                    }
                }
                AcceptEvent::Link(Err(e @ (LinkError::Closed | LinkError::GaveUp { .. }))) => break e,
                // A transient failure (a full file table, say): wait before
                // asking again rather than spin.
                AcceptEvent::Link(Err(_)) => clock.sleep_until(clock.now().add_millis(SOURCE_RETRY_MS)).await,
                AcceptEvent::Handshake((Err(e), _)) => match e {
                    ConnectError::TimedOut => count(|s| s.timed_out += 1),
                    _ => count(|s| s.refused += 1),
                },
                AcceptEvent::Handshake((Ok(presented), conn)) => {
                    // A place, or the place of the connection idle the
                    // longest, or nothing.
                    let mut victim = None;
                    if !take_place(&held, max_connections) {
                        victim = min_idle_ms.and_then(|min| longest_idle(&mut accepted, now(), min));
                        if victim.is_none() {
                            count(|s| s.over_cap += 1);
                            continue;
                        }
                    }
                    if !send_prologue_now(&presented.tx, &local) {
                        // Its link failed: nobody is evicted for it.
                        if victim.is_none() {
                            held.lock(|h| h.set(h.get().saturating_sub(1)));
                        }
                        count(|s| s.refused += 1);
                        continue;
                    }
                    if let Some(victim) = victim {
                        // The victim's place goes to the newcomer.
                        if victim.evict() {
                            count(|s| s.evicted_idle += 1);
                        }
                        if !take_place(&held, max_connections) {
                            count(|s| s.over_cap += 1);
                            continue;
                        }
                    }
                    conn.count();
                    if accepted.len() >= 2 * max_connections.max(8) {
                        accepted.retain(|c| c.strong_count() > 0);
                    }
                    accepted.push(Arc::downgrade(&conn));
                    let Presented { tx, rx, peer } = presented;
                    let conduit =
                        BareConduit::<CountedLink<S::Link>, F>::from_parts(BareTx::new(tx), BareRx::new(rx), peer);
                    // A conduit the queue has no room for is dropped after
                    // the lock (its drop gives its connection back).
                    let _unqueued = shared.lock(|s| {
                        let mut s = s.borrow_mut();
                        match s.queue.push_back(conduit) {
                            Ok(()) => {
                                s.stats.accepted += 1;
                                s.waker.wake();
                                None
                            }
                            Err(unqueued) => {
                                s.stats.busy += 1;
                                Some(unqueued)
                            }
                        }
                    });
                }
            }
        };
        shared.lock(|s| {
            let mut s = s.borrow_mut();
            s.closed = true;
            s.waker.wake();
        });
        ended
    }
}
