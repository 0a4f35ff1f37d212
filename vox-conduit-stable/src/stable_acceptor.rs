//! `StableAcceptor`: many stable sessions through one listener. A runner
//! future handshakes new links concurrently, each under a deadline, routes
//! resuming links to their sessions by resume key (whether or not the
//! application is in `accept`), and refuses newcomers on the wire when its
//! table is full of live sessions.
//!
//! # Policy
//!
//! - **Concurrent handshakes**: up to [`AcceptorConfig::pending`] links
//!   read their prologue and hello at once, each for at most `timeout_ms`,
//!   polled by readiness. When all places are taken, a new link takes the
//!   place of the oldest handshake that has presented no valid prologue
//!   yet; one that has is never evicted by a newcomer, and when all have,
//!   the newcomer's link is closed. So connections that send nothing
//!   cannot lock clients out: with `P` places and idle connections
//!   arriving at `R` a second, a client whose first valid bytes arrive
//!   within `P / R` seconds is served (see
//!   [`PendingHandshakes`](vox_types::PendingHandshakes)). A peer that
//!   presents a valid prologue and then stalls holds its place for
//!   `timeout_ms`: more than `P / timeout_ms` such connections a second
//!   (protocol knowledge needed) and newcomers find every place held and
//!   are closed (`AcceptorStats::refused_full`).
//! - **Routing**: a hello with a known key goes to its session, even while
//!   the application does not call [`StableAcceptor::accept`]. Every key
//!   a session issues opens with the session's tag
//!   ([`acceptor_core::KEY_TAG_LEN`](crate::acceptor_core::KEY_TAG_LEN)
//!   bytes, then 12 random ones), so a resume, or a made-up key, costs one
//!   lookup and at most one check, not a search of the table.
//! - **Ended sessions** leave the table when it looks full or has doubled
//!   since the last sweep ([`Sweep`](crate::acceptor_core::Sweep)): a
//!   burst of `n` newcomers costs about `2n` checks, not `n²/2`. A full
//!   table that had no place to give is searched again only after
//!   [`Sweep::FULL_RECHECK_MS`](crate::acceptor_core::Sweep::FULL_RECHECK_MS)
//!   (100 ms); newcomers in between get `Reject(TableFull)` at once, so
//!   a flood of hellos costs one sweep and one search of the table per
//!   100 ms, and a newcomer told `Busy` (the accept queue is full) none
//!   (`AcceptorStats::table_scans` counts them). A resume with the key of
//!   a session that completed is `Reject(SessionUnknown)`, swept or not.
//! - **Table**: at most [`AcceptorConfig::sessions`] sessions. A new
//!   session may take the place of a session that ended, finished, or has
//!   had no link and no frame for its `timeout_ms` (oldest first); never
//!   of a session that has a link or was active within its timeout.
//!   Otherwise the newcomer gets `Reject(TableFull)`; if
//!   [`AcceptorConfig::queue`] new sessions already wait for `accept`, it
//!   gets `Reject(Busy)`. Anonymous hellos cannot flush live sessions.
//! - **Refusals**: a prologue of another schema, mode, version or role is
//!   answered with ours (the initiator then ends with the typed refusal);
//!   an unknown key gets `Reject(SessionUnknown)`.
//!
//! Without an allocator, run one [`StableConduit::acceptor`] on a
//! `vox_link_embedded::LinkChannel` instead (one session at a time).

use crate::acceptor_core::{AdmitDecision, HelloReader, HelloStep, Sweep, admit, route};
use crate::driver::write_out;
use crate::primed_link::PrimedLink;
use crate::session::Outgoing;
use crate::stable_storage::StableStore;
use crate::wire::{Hello, RejectReason, WireFrame};
use crate::{Acceptor, AcceptorConfig, ConfigError, SessionError, StableConduit, StableConfig, StableDriver};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use core::cell::RefCell;
use core::future::{Future, poll_fn};
use core::task::{Context, Poll, Waker};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;
use heapless::Deque;
use vox_link_embedded::SharedLinkChannel;
use vox_types::{
    AcceptEvent, Admission, Clock, ConduitMode, HandshakeProgress, Link, LinkError, LinkRx, LinkSource, LinkTx,
    MaybeSend, MaybeSync, MsgFamily, PendingHandshakes, Prologue, SessionRole, StorageRef, send_prologue,
};

/// What [`StableAcceptor::accept`] yields: a new session's conduit, its
/// driver, and the link source to run the driver on.
pub type AcceptedSession<F, St, M, L> = (StableConduit<F, St>, StableDriver<F, St, Acceptor>, SessionLinks<M, L>);

/// A link of an accepted session (its hello already read by the acceptor).
pub type AcceptedLink<L> = PrimedLink<<L as Link>::Tx, <L as Link>::Rx>;
/// Where an accepted session's driver takes its links from.
pub type SessionLinks<M, L> = SharedLinkChannel<M, AcceptedLink<L>>;

/// What [`StableAcceptor::new`] makes: the application's handle and the
/// runner.
pub type AcceptorParts<S, F, St, M, D> =
    (StableAcceptor<F, St, M, <S as LinkSource>::Link>, AcceptorRunner<S, F, St, M, D>);

/// What an acceptor's runner did with the links and hellos it got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptorStats {
    /// New sessions handed to `accept`.
    pub accepted: u64,
    /// Links routed to their session by resume key.
    pub resumed: u64,
    /// Hellos with a key no session knows (`Reject(SessionUnknown)`).
    pub unknown_keys: u64,
    /// New sessions refused: the table was full of live ones, as of its
    /// last search, at most 100 ms old (`Reject(TableFull)`).
    pub table_full: u64,
    /// New sessions refused: the accept queue was full (`Reject(Busy)`).
    pub busy: u64,
    /// Pending handshakes that had presented nothing valid, dropped to
    /// make room for a newer link.
    pub evicted_silent: u64,
    /// Links closed at once: every handshake place held a handshake that
    /// had presented a valid prologue.
    pub refused_full: u64,
    /// Handshakes that ended without a hello (timed out, link failed,
    /// prologue refused).
    pub failed: u64,
    /// Passes over the whole session table: sweeps of ended sessions
    /// (when the table has doubled, or looks full) and searches of a full
    /// table for a place to evict (at most one of each per
    /// [`Sweep::FULL_RECHECK_MS`](crate::acceptor_core::Sweep::FULL_RECHECK_MS)
    /// while none is found, however many newcomers arrive; none for a
    /// newcomer told `Busy`).
    pub table_scans: u64,
}

struct Queue<T> {
    sessions: VecDeque<T>,
    /// `sessions` holds at most this many.
    limit: usize,
    stats: AcceptorStats,
    /// The runner stopped (its link source is closed).
    closed: bool,
    waker: WakerRegistration,
}

/// The application's side: takes new sessions. Made with its
/// [`AcceptorRunner`] by [`StableAcceptor::new`].
// r[impl stable.acceptor]
pub struct StableAcceptor<F: MsgFamily, St: StableStore + 'static, M: RawMutex + 'static, L: Link> {
    queue: QueueRef<F, St, M, L>,
}

/// The acceptor's runner: spawn it (or join it); it accepts links,
/// handshakes them, routes and refuses, as its [`AcceptorConfig`] says.
pub struct AcceptorRunner<S, F, St, M, D>
where
    S: LinkSource,
    F: MsgFamily,
    St: StableStore + 'static,
    M: RawMutex + 'static,
{
    source: S,
    clock: D,
    config: StableConfig,
    acceptor: AcceptorConfig,
    queue: QueueRef<F, St, M, S::Link>,
}

/// The acceptor's sessions, by the tag their keys open with.
struct Table<St: StableStore + 'static, M: RawMutex + 'static, L: Link> {
    by_tag: BTreeMap<u32, Session<St, M, L>>,
    /// Sessions accepted so far.
    born: u64,
    /// When ended sessions are next dropped from `by_tag`.
    sweep: Sweep,
}

struct Session<St: StableStore + 'static, M: RawMutex + 'static, L: Link> {
    storage: StorageRef<St>,
    links: SessionLinks<M, L>,
    /// Accept order: the smallest is the oldest.
    born: u64,
}

impl<St: StableStore + 'static, M: RawMutex + 'static, L: Link> Session<St, M, L> {
    /// Ended, finished, or without a link and silent for its timeout at
    /// `now` (the acceptor's clock, which is its drivers' clock too).
    fn evictable(&self, now: u64) -> bool {
        self.storage.lock(|l| {
            let s = &l.session.state;
            let silent = !s.has_link() && s.silent_for(now) >= u64::from(s.config().timeout_ms);
            s.ended().is_some() || s.is_complete() || silent
        })
    }

    fn ended(&self) -> bool {
        self.storage.lock(|l| l.session.state.ended().is_some() || l.session.state.is_complete())
    }
}

impl<F, St, M, L> StableAcceptor<F, St, M, L>
where
    F: MsgFamily,
    St: StableStore + Default + 'static,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
    L: Link + MaybeSend,
{
    /// An acceptor on `source`, and the runner that must run for it. Both
    /// configurations are checked here, before any link is taken.
    ///
    /// `clock` must be the clock the sessions' drivers run on: the runner
    /// reads it to judge how long a session without a link has been
    /// silent (the drivers sleep while nothing is due, so the sessions
    /// hold no fresher time of their own).
    ///
    /// A host that accepts a device's session over in-memory links:
    ///
    /// ```
    /// use embassy_futures::join::join;
    /// use embassy_futures::select::{Either, select};
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use std::sync::Arc;
    /// use vox_conduit_stable::{AcceptorConfig, StableAcceptor, StableConduit, StableConfig, StableStorage};
    /// use vox_link_embedded::MemoryLink;
    /// use vox_link_embedded::sim::{SimClock, memory_link_source};
    /// use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};
    /// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
    /// # struct Ping(u32);
    /// # vox_types::msg_family!(PingFamily => Ping);
    ///
    /// type Storage = StableStorage<CriticalSectionRawMutex, 1024, 8, 1024, 8>;
    /// type Mem = MemoryLink<CriticalSectionRawMutex, 4, 256>;
    /// type Acceptor = StableAcceptor<PingFamily, Storage, CriticalSectionRawMutex, Mem>;
    /// let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    /// let (clock, config) = (SimClock::new(), StableConfig::DEFAULT);
    /// // Up to 8 sessions.
    /// let (mut acceptor, runner) = Acceptor::new(listener, clock.clone(), config, AcceptorConfig::with_sessions(8))?;
    /// let storage = Arc::new(Storage::new());
    /// let (device, device_driver) = StableConduit::<PingFamily, Storage>::initiator(storage, config)?;
    ///
    /// let host = async {
    ///     // A new session: its conduit, its driver and the links routed to it.
    ///     let (conduit, driver, links) = acceptor.accept().await.unwrap();
    ///     let rng: rand_chacha::ChaCha8Rng = rand_core::SeedableRng::seed_from_u64(7);
    ///     let (_tx, mut rx) = conduit.split();
    ///     let read = async { rx.recv().await.unwrap().unwrap().get::<PingFamily>().0 };
    ///     match select(read, driver.run(links, rng, clock.clone())).await {
    ///         Either::First(n) => n,
    ///         Either::Second(ended) => panic!("{ended:?}"),
    ///     }
    /// };
    /// let device_app = async {
    ///     let (tx, _rx) = device.split();
    ///     tx.reserve().await.unwrap().send(Ping(42)).unwrap();
    /// };
    /// let background = join(runner.run(), join(device_driver.run(dialer, clock.clone()), device_app));
    /// let Either::First(got) = futures::executor::block_on(select(host, background)) else { unreachable!() };
    /// assert_eq!(got, 42);
    /// # Ok::<(), vox_conduit_stable::ConfigError>(())
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new<S, D>(
        source: S,
        clock: D,
        config: StableConfig,
        acceptor: AcceptorConfig,
    ) -> Result<AcceptorParts<S, F, St, M, D>, ConfigError>
    where
        S: LinkSource<Link = L>,
        D: Clock + Clone,
    {
        acceptor.check()?;
        // Checks the configuration against the storage type too.
        StableConduit::<F, St>::acceptor(Arc::new(St::default()), config)?;
        let queue = Arc::new(Mutex::new(RefCell::new(Queue {
            sessions: VecDeque::new(),
            limit: acceptor.queue,
            stats: AcceptorStats::default(),
            closed: false,
            waker: WakerRegistration::new(),
        })));
        Ok((Self { queue: queue.clone() }, AcceptorRunner { source, clock, config, acceptor, queue }))
    }

    /// What the runner did so far.
    pub fn stats(&self) -> AcceptorStats {
        self.queue.lock(|q| q.borrow().stats)
    }

    /// The next new session: its conduit, its driver, and the link source
    /// to run the driver on (`driver.run(links, rng, clock)`).
    /// [`SessionError::SourceClosed`] once the runner stopped.
    pub async fn accept(&mut self) -> Result<AcceptedSession<F, St, M, L>, SessionError> {
        poll_fn(|cx| {
            self.queue.lock(|q| {
                let mut q = q.borrow_mut();
                if let Some(s) = q.sessions.pop_front() {
                    return Poll::Ready(Ok(s));
                }
                if q.closed {
                    return Poll::Ready(Err(SessionError::SourceClosed));
                }
                q.waker.register(cx.waker());
                Poll::Pending
            })
        })
        .await
    }
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

/// Sends `Reject(reason)` on a link, if it can take it at once.
fn reject(link: impl Link, reason: RejectReason) {
    let (tx, _rx) = link.split();
    if let Some(Ok(permit)) = poll_once(tx.reserve()) {
        let _ = write_out(permit, &Outgoing::Frame(WireFrame::Reject(reason)));
    }
}

/// Reads the initiator's prologue and hello (skipping stale frames) within
/// `timeout_ms`, answering prologues, as the core's [`HelloReader`] says;
/// returns the link primed with both; `None` for a link that failed,
/// timed out or was refused.
async fn read_hello<L: Link, D: Clock>(
    link: L,
    clock: D,
    timeout_ms: u32,
    local: Prologue,
    progress: HandshakeProgress,
) -> Option<(AcceptedLink<L>, Hello)> {
    let (tx, mut rx) = link.split();
    let read = async {
        let mut reader = HelloReader::new(local);
        let mut kept = Deque::<_, 2>::new();
        loop {
            let payload = rx.recv().await.ok()??;
            match reader.on_payload(payload.as_bytes()) {
                HelloStep::Skip => {}
                HelloStep::Garbage(_) => return None,
                HelloStep::Refused(_) => {
                    let _ = send_prologue(&tx, &local).await;
                    return None;
                }
                HelloStep::Presented => {
                    send_prologue(&tx, &local).await.ok()?;
                    // No newcomer takes this handshake's place now.
                    progress.mark_presented();
                    kept.clear();
                    kept.push_back(payload).ok()?;
                }
                HelloStep::Hello(hello) => {
                    kept.push_back(payload).ok()?;
                    return Some((kept, hello));
                }
            }
        }
    };
    let deadline = clock.now() + core::time::Duration::from_millis(u64::from(timeout_ms));
    let (kept, hello) = match select(read, clock.sleep_until(deadline)).await {
        Either::First(found) => found?,
        Either::Second(()) => return None,
    };
    Some((PrimedLink::new(tx, rx, kept), hello))
}

impl<S, F, St, M, D> AcceptorRunner<S, F, St, M, D>
where
    S: LinkSource,
    S::Link: MaybeSend,
    F: MsgFamily,
    St: StableStore + Default + 'static,
    M: RawMutex + MaybeSend + MaybeSync + 'static,
    D: Clock + Clone,
{
    /// Runs the acceptor until its link source closes
    /// ([`SessionError::SourceClosed`]). Sessions already accepted go on
    /// with their own drivers.
    // r[impl stable.acceptor.concurrent]
    // r[impl stable.acceptor.routing]
    pub async fn run(self) -> SessionError {
        let Self { mut source, clock, config, acceptor, queue } = self;
        let local = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, F::FINGERPRINT);
        let timeout_ms = config.timeout_ms;
        // By tag: the first bytes of every key a session issues name it.
        let mut sessions: Table<St, M, S::Link> = Table { by_tag: BTreeMap::new(), born: 0, sweep: Sweep::new() };
        let handshake = |link, progress| read_hello(link, clock.clone(), timeout_ms, local, progress);
        let mut pending = PendingHandshakes::for_maker(&handshake, acceptor.pending);
        let count = |f: fn(&mut AcceptorStats)| queue.lock(|q| f(&mut q.borrow_mut().stats));
        let ended = loop {
            match pending.next(&mut source).await {
                AcceptEvent::Link(Ok(link)) => match pending.push_with(|progress| handshake(link, progress)) {
                    Admission::Admitted => {}
                    Admission::EvictedSilent => count(|s| s.evicted_silent += 1),
                    Admission::Refused => count(|s| s.refused_full += 1),
                },
                AcceptEvent::Link(Err(LinkError::Closed | LinkError::GaveUp { .. })) => {
                    break SessionError::SourceClosed;
                }
                // A transient failure (a full file table, say): wait before
                // asking again rather than spin.
                AcceptEvent::Link(Err(_)) => {
                    clock.sleep_until(clock.now().add_millis(u64::from(config.retry_delay_ms))).await;
                }
                AcceptEvent::Handshake(None) => count(|s| s.failed += 1),
                AcceptEvent::Handshake(Some((link, hello))) => match hello.key {
                    Some(key) => {
                        let known = route(
                            |tag| sessions.by_tag.get(&tag),
                            &key,
                            // A session that completed (its linger ran
                            // out) takes no link: its keys are unknown.
                            |s, key| {
                                s.storage.lock(|l| l.session.state.knows_key(key) && !l.session.state.is_complete())
                            },
                        );
                        match known {
                            Some(session) => {
                                // The newest link replaces one not yet taken.
                                let _ = session.links.try_receive();
                                let _ = session.links.try_offer(link);
                                count(|s| s.resumed += 1);
                            }
                            None => {
                                reject(link, RejectReason::SessionUnknown);
                                count(|s| s.unknown_keys += 1);
                            }
                        }
                    }
                    None => {
                        let now = clock.now().as_millis();
                        let table = acceptor.sessions;
                        new_session::<F, St, M, S::Link>(&config, table, &queue, &mut sessions, link, now)
                    }
                },
            }
        };
        queue.lock(|q| {
            let mut q = q.borrow_mut();
            q.closed = true;
            q.waker.wake();
        });
        ended
    }
}

type QueueRef<F, St, M, L> = Arc<Mutex<M, RefCell<Queue<AcceptedSession<F, St, M, L>>>>>;

/// A hello without a key: a new session, if the table and the queue have
/// room (see the module's policy).
// r[impl stable.acceptor.eviction]
// r[impl core.burst]
fn new_session<F, St, M, L>(
    config: &StableConfig,
    table: usize,
    queue: &QueueRef<F, St, M, L>,
    sessions: &mut Table<St, M, L>,
    link: AcceptedLink<L>,
    now: u64,
) where
    F: MsgFamily,
    St: StableStore + Default + 'static,
    M: RawMutex + 'static,
    L: Link,
{
    let (queued, limit) = queue.lock(|q| (q.borrow().sessions.len(), q.borrow().limit));
    // Passes over the whole table, counted (`AcceptorStats::table_scans`).
    let scans = core::cell::Cell::new(0u64);
    // A newcomer told `Busy` (the accept queue is full) costs no pass.
    if queued < limit && sessions.sweep.due(sessions.by_tag.len(), table, now) {
        scans.set(scans.get() + 1);
        sessions.by_tag.retain(|_, s| !s.ended());
        sessions.sweep.swept(sessions.by_tag.len());
    }
    let by_tag = &sessions.by_tag;
    let may_search = sessions.sweep.may_search(now);
    let oldest_evictable = || {
        if !may_search {
            // Full, and searched in vain less than `FULL_RECHECK_MS` ago.
            return None;
        }
        scans.set(scans.get() + 1);
        by_tag.iter().filter(|(_, s)| s.evictable(now)).min_by_key(|(_, s)| s.born).map(|(&tag, _)| tag)
    };
    let decision = admit(sessions.by_tag.len(), queued, table, limit, oldest_evictable);
    if decision == AdmitDecision::Reject(RejectReason::TableFull) && may_search {
        sessions.sweep.found_full(now);
    }
    if scans.get() > 0 {
        queue.lock(|q| q.borrow_mut().stats.table_scans += scans.get());
    }
    match decision {
        AdmitDecision::Admit => {}
        AdmitDecision::AdmitEvicting(tag) => {
            if let Some(expired) = sessions.by_tag.remove(&tag) {
                expired.storage.lock(|l| l.session.state.end(SessionError::SessionLost));
            }
        }
        AdmitDecision::Reject(reason) => {
            queue.lock(|q| {
                let stats = &mut q.borrow_mut().stats;
                match reason {
                    RejectReason::Busy => stats.busy += 1,
                    _ => stats.table_full += 1,
                }
            });
            return reject(link, reason);
        }
    }
    let storage = StorageRef::Shared(Arc::new(St::default()));
    let Ok((conduit, driver)) = StableConduit::acceptor(storage, *config) else {
        // Checked in `StableAcceptor::new`.
        return;
    };
    sessions.born += 1;
    let born = sessions.born;
    // The tag: the accept count's low bits, skipping tags still in use
    // (the table holds far fewer than 2^32 sessions).
    let mut tag = born as u32;
    while sessions.by_tag.contains_key(&tag) {
        tag = tag.wrapping_add(1);
    }
    let driver = driver.with_key_tag(tag);
    let links: SessionLinks<M, L> = SharedLinkChannel::new();
    let _ = links.try_offer(link);
    sessions.by_tag.insert(tag, Session { storage: conduit.storage_ref(), links: links.clone(), born });
    queue.lock(|q| {
        let mut q = q.borrow_mut();
        q.sessions.push_back((conduit, driver, links));
        q.stats.accepted += 1;
        q.waker.wake();
    });
}
