//! `BareAcceptor`: bare conduits from a listener (any link source), with a
//! runner that handshakes many connections at once, each under a
//! deadline, and holds at most a fixed number of connections.
//!
//! # Policy
//!
//! - Up to `PENDING` prologue exchanges run at once, each for at most
//!   `timeout_ms`; a silent, slow or garbage-sending connection delays no
//!   other.
//! - At most `max_connections` links are held, handshaking or accepted
//!   (an accepted conduit counts until both its halves are dropped); a
//!   connection beyond that is closed at once. Memory and file handles stay
//!   bounded whatever peers do.
//! - A refused prologue (another schema, mode, version or role) is
//!   answered with ours, so the peer gets the typed refusal; the runner
//!   counts it.
//! - At most 4 accepted conduits wait for [`BareAcceptor::accept`]; a
//!   conduit beyond that is closed (counted as `busy`).

use crate::{BareConduit, ConnectError};
use alloc::sync::Arc;
use core::cell::{Cell, RefCell};
use core::future::{Future, poll_fn};
use core::task::{Context, Poll};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::waitqueue::WakerRegistration;
use heapless::Deque;
use vox_types::{
    AcceptEvent, Admission, Backing, Clock, ConduitAcceptor, HandshakeProgress, Link, LinkError, LinkRx, LinkSource,
    LinkTx, MaybeSend, MsgFamily, PendingHandshakes, SessionRole,
};

/// Accepted conduits waiting for `accept` at most.
const QUEUE: usize = 4;

/// What the runner did with the connections it got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BareAcceptorStats {
    /// Conduits handed to `accept`.
    pub accepted: u64,
    /// Connections closed at once: `max_connections` were held.
    pub over_cap: u64,
    /// Handshakes with no prologue within the deadline.
    pub timed_out: u64,
    /// Handshakes dropped to make room for a newer connection (all
    /// `PENDING` places were taken).
    pub evicted: u64,
    /// Prologues refused (schema, mode, version, role) or garbage.
    pub refused: u64,
    /// Conduits closed because `accept` was not keeping up.
    pub busy: u64,
    /// Links held now (handshaking or accepted).
    pub connections: usize,
}

struct Shared<C> {
    queue: Deque<C, QUEUE>,
    stats: BareAcceptorStats,
    closed: bool,
    waker: WakerRegistration,
}

type SharedRef<C> = Arc<Mutex<CriticalSectionRawMutex, RefCell<Shared<C>>>>;

/// A link that counts as held until both its halves are dropped.
pub struct CountedLink<L> {
    link: L,
    slot: ConnectionSlot,
}

/// Links held now, shared by the runner and every [`ConnectionSlot`].
type Held = Arc<Mutex<CriticalSectionRawMutex, Cell<usize>>>;

/// One of the acceptor's `max_connections`, given back on drop.
struct ConnectionSlot {
    held: Held,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.held.lock(|h| h.set(h.get().saturating_sub(1)));
    }
}

/// Sending half of a [`CountedLink`].
pub struct CountedTx<T> {
    tx: T,
    _slot: Arc<ConnectionSlot>,
}

/// Receiving half of a [`CountedLink`].
pub struct CountedRx<R> {
    rx: R,
    _slot: Arc<ConnectionSlot>,
}

impl<L: Link> Link for CountedLink<L> {
    type Tx = CountedTx<L::Tx>;
    type Rx = CountedRx<L::Rx>;

    fn split(self) -> (Self::Tx, Self::Rx) {
        let (tx, rx) = self.link.split();
        let slot = Arc::new(self.slot);
        (CountedTx { tx, _slot: slot.clone() }, CountedRx { rx, _slot: slot })
    }
}

impl<T: LinkTx> LinkTx for CountedTx<T> {
    type Permit<'a>
        = T::Permit<'a>
    where
        Self: 'a;

    fn reserve(&self) -> impl Future<Output = Result<Self::Permit<'_>, LinkError>> + MaybeSend + '_ {
        self.tx.reserve()
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
        self.rx.poll_recv(cx)
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
    /// held.
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

impl<S, F, D, const PENDING: usize> BareAcceptorRunner<S, F, D, PENDING>
where
    S: LinkSource,
    S::Link: MaybeSend + 'static,
    <S::Link as Link>::Tx: 'static,
    <S::Link as Link>::Rx: 'static,
    F: MsgFamily + 'static,
    D: Clock + Clone,
{
    /// Runs until the link source closes.
    pub async fn run(self) -> LinkError {
        let Self { mut source, clock, timeout_ms, max_connections, shared, held } = self;
        // A bare handshake ends with its first valid frame: a pending one
        // has presented nothing, and the oldest makes room for a newcomer.
        let handshake = |link: CountedLink<S::Link>, _: HandshakeProgress| {
            BareConduit::<_, F>::connect_within(link, SessionRole::Acceptor, clock.clone(), timeout_ms)
        };
        let mut pending = PendingHandshakes::for_maker(&handshake, PENDING);
        let ended = loop {
            match pending.next(&mut source).await {
                AcceptEvent::Link(Ok(link)) => {
                    let room = held.lock(|h| {
                        let ok = h.get() < max_connections;
                        if ok {
                            h.set(h.get() + 1);
                        }
                        ok
                    });
                    if !room {
                        shared.lock(|s| s.borrow_mut().stats.over_cap += 1);
                        continue;
                    }
                    let slot = ConnectionSlot { held: held.clone() };
                    match pending.push_with(|progress| handshake(CountedLink { link, slot }, progress)) {
                        Admission::Admitted => {}
                        // All handshake places were taken: the oldest went.
                        Admission::EvictedSilent => shared.lock(|s| s.borrow_mut().stats.evicted += 1),
                        // Not for bare handshakes (none presents and waits).
                        Admission::Refused => shared.lock(|s| s.borrow_mut().stats.over_cap += 1),
                    }
                }
                AcceptEvent::Link(Err(e @ (LinkError::Closed | LinkError::GaveUp { .. }))) => break e,
                // A transient failure (a full file table, say): wait before
                // asking again rather than spin.
                AcceptEvent::Link(Err(_)) => clock.sleep_until(clock.now().add_millis(SOURCE_RETRY_MS)).await,
                AcceptEvent::Handshake(handshaken) => {
                    // A conduit the queue has no room for is dropped after
                    // the lock (its drop gives its connection back).
                    let _unqueued = shared.lock(|s| {
                        let mut s = s.borrow_mut();
                        match handshaken {
                            Ok(conduit) => match s.queue.push_back(conduit) {
                                Ok(()) => {
                                    s.stats.accepted += 1;
                                    s.waker.wake();
                                    None
                                }
                                Err(unqueued) => {
                                    s.stats.busy += 1;
                                    Some(unqueued)
                                }
                            },
                            Err(ConnectError::TimedOut) => {
                                s.stats.timed_out += 1;
                                None
                            }
                            Err(_) => {
                                s.stats.refused += 1;
                                None
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
