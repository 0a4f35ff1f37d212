//! Churn: connections that send nothing, opened at 1,000 a second for 10
//! simulated seconds, against a client that connects through a relay
//! delaying every frame by 50 ms each way (it opens its upstream
//! connection as soon as the client connects, so the acceptor sees the
//! connection 50 ms before its first byte). Both acceptors serve the
//! client every time with their default 1,024 handshake places, and the
//! stated bound is sharp: with 32 places (32 ms < 50 ms) it is never
//! served.

use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use futures::StreamExt;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vox_conduit_bare::{BareAcceptor, BareConduit};
use vox_conduit_stable::{AcceptorConfig, StableAcceptor, StableConduit, StableConfig};
use vox_link_embedded::MemoryLinkPair;
use vox_link_embedded::sim::{MemoryDialer, SimClock, memory_link_source};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::sim_runtime::{SimHandle, SimRuntime};
use vox_tests::stable_harness::{TestStorage, rng};
use vox_types::{
    Clock, Conduit, ConduitAcceptor, ConduitRx, ConduitTx, ConduitTxPermit, Instant, Link, LinkError, LinkRx,
    LinkSource, LinkTx, LinkTxPermit, SessionRole, WriteSlot,
};

type M = CriticalSectionRawMutex;
type Mem = vox_link_embedded::MemoryLink<M, 4, 256>;
type Dialer = Arc<Mutex<MemoryDialer<M, 4, 256>>>;

/// Idle connections a second, for how long.
const IDLE_PER_MS: u32 = 1;
const CHURN: Duration = Duration::from_secs(10);
/// The relay's delay, each way.
const RELAY_DELAY: Duration = Duration::from_millis(50);
/// A client's attempt: served (a reply to its message) within this, or not.
const ATTEMPT: Duration = Duration::from_secs(2);
/// Attempts, one every 500 ms while the churn runs.
const ATTEMPTS: u32 = 14;

const CONFIG: StableConfig =
    StableConfig { timeout_ms: 2_000, keepalive_ms: 500, linger_ms: 2_000, ..StableConfig::DEFAULT };

/// Forwards frames from `rx` to `tx`, each `RELAY_DELAY` after it came.
async fn one_way(mut rx: impl LinkRx, tx: impl LinkTx, clock: SimClock) {
    let (queue, mut due) = unbounded::<(Instant, Vec<u8>)>();
    let receive = async {
        while let Ok(Some(frame)) = rx.recv().await {
            let _ = queue.unbounded_send((clock.now() + RELAY_DELAY, frame.as_bytes().to_vec()));
        }
    };
    let send = async {
        while let Some((at, bytes)) = due.next().await {
            clock.sleep_until(at).await;
            let Ok(permit) = tx.reserve().await else { return };
            let Ok(mut slot) = permit.alloc(bytes.len()) else { return };
            slot.as_mut_slice().copy_from_slice(&bytes);
            slot.commit();
        }
    };
    select(receive, send).await;
}

/// The relay between a client's end and the acceptor's connection; when
/// either side goes, both do.
async fn relay(client: Mem, upstream: Mem, clock: SimClock) {
    let (ctx, crx) = client.split();
    let (utx, urx) = upstream.split();
    select(one_way(crx, utx, clock.clone()), one_way(urx, ctx, clock)).await;
}

/// The client's link source: each link is a fresh connection to the
/// acceptor (made at once) behind a fresh relay.
struct RelaySource {
    dialer: Dialer,
    relays: UnboundedSender<(Mem, Mem)>,
}

impl LinkSource for RelaySource {
    type Link = Mem;
    async fn next_link(&mut self) -> Result<Mem, LinkError> {
        let upstream = self.dialer.lock().unwrap().connect();
        let (client, relay_end) = MemoryLinkPair::<M, 4, 256>::new_shared();
        self.relays.unbounded_send((relay_end, upstream)).map_err(|_| LinkError::Closed)?;
        Ok(client)
    }
}

/// Starts the relays `RelaySource`s ask for.
fn relay_source(h: &SimHandle, dialer: &Dialer) -> RelaySource {
    let (relays, mut asked) = unbounded::<(Mem, Mem)>();
    let spawner = h.clone();
    let clock = h.clock();
    h.spawn(async move {
        while let Some((client, upstream)) = asked.next().await {
            spawner.spawn(relay(client, upstream, clock.clone())).forget();
        }
    })
    .forget();
    RelaySource { dialer: dialer.clone(), relays }
}

/// Opens `IDLE_PER_MS` connections a millisecond for `CHURN` and holds
/// them all, sending nothing.
fn churn(h: &SimHandle, dialer: &Dialer) {
    let (dialer, clock) = (dialer.clone(), h.clock());
    h.spawn(async move {
        let mut held = Vec::new();
        let end = clock.now() + CHURN;
        while clock.now() < end {
            for _ in 0..IDLE_PER_MS {
                held.push(dialer.lock().unwrap().connect());
            }
            clock.sleep(Duration::from_millis(1)).await;
        }
        held
    })
    .forget();
}

/// Starts `attempt` every 500 ms from 1 s on (when the handshake places
/// are full of idle connections), each given `ATTEMPT` to be served, all
/// within the churn; how many were served.
async fn attempts<F: Future<Output = bool>>(clock: &SimClock, mut attempt: impl FnMut(u32) -> F) -> u32 {
    let first = clock.now() + Duration::from_secs(1);
    let runs = (0..ATTEMPTS).map(|n| {
        let start = first + Duration::from_millis(500 * u64::from(n));
        assert!(start + ATTEMPT <= Instant::ZERO + CHURN, "every attempt ends within the churn");
        let run = attempt(n);
        async move {
            clock.sleep_until(start).await;
            matches!(select(run, clock.sleep_until(start + ATTEMPT)).await, Either::First(true))
        }
    });
    futures::future::join_all(runs).await.into_iter().filter(|&served| served).count() as u32
}

/// The server's side of a conduit: answers each request with its id.
async fn echo(conduit: impl Conduit<Msg = KitFamily>) {
    let (tx, mut rx) = conduit.split();
    while let Ok(Some(m)) = rx.recv().await {
        let id = m.get::<KitFamily>().id;
        let Ok(permit) = tx.reserve().await else { return };
        let _ = permit.send(kit_msg(id, "reply"));
    }
}

/// A client's request `n`: whether its reply came.
async fn round_trip(conduit: impl Conduit<Msg = KitFamily>, n: u32) -> bool {
    let (tx, mut rx) = conduit.split();
    let Ok(permit) = tx.reserve().await else { return false };
    if permit.send(kit_msg(n, "hello")).is_err() {
        return false;
    }
    matches!(rx.recv().await, Ok(Some(reply)) if reply.get::<KitFamily>().id == n)
}

/// Clients served out of `ATTEMPTS`, by a `StableAcceptor` with
/// `pending` handshake places.
fn stable_served(pending: usize) -> u32 {
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let main = async move {
        let clock = h.clock();
        let (dialer, listener) = memory_link_source::<M, 4, 256>([]);
        let dialer: Dialer = Arc::new(Mutex::new(dialer));
        let acceptor_config = AcceptorConfig { pending, ..AcceptorConfig::with_sessions(64) };
        let (mut acceptor, runner) =
            StableAcceptor::<KitFamily, TestStorage, M, Mem>::new(listener, clock.clone(), CONFIG, acceptor_config)
                .unwrap();
        h.spawn(runner.run()).forget();
        let (server, server_clock) = (h.clone(), clock.clone());
        h.spawn(async move {
            while let Ok((conduit, driver, links)) = acceptor.accept().await {
                server.spawn(driver.run(links, rng(3), server_clock.clone())).forget();
                server.spawn(echo(conduit)).forget();
            }
        })
        .forget();
        churn(&h, &dialer);
        attempts(&clock, |n| {
            let (h, dialer, clock) = (h.clone(), dialer.clone(), clock.clone());
            async move {
                let (client, driver) =
                    StableConduit::<KitFamily, TestStorage>::initiator(Arc::new(TestStorage::new()), CONFIG).unwrap();
                let _driving = h.spawn(driver.run(relay_source(&h, &dialer), clock));
                round_trip(client, n).await
            }
        })
        .await
    };
    rt.run(main, Instant::from_millis(60_000)).expect("the simulation finishes")
}

/// Clients served out of `ATTEMPTS`, by a `BareAcceptor` with `PENDING`
/// handshake places.
fn bare_served<const PENDING: usize>() -> u32 {
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let main = async move {
        let clock = h.clock();
        let (dialer, listener) = memory_link_source::<M, 4, 256>([]);
        let dialer: Dialer = Arc::new(Mutex::new(dialer));
        let (mut acceptor, runner) =
            BareAcceptor::<Mem, KitFamily>::new::<_, _, PENDING>(listener, clock.clone(), CONFIG.timeout_ms, 100_000);
        h.spawn(runner.run()).forget();
        let server = h.clone();
        h.spawn(async move {
            while let Ok(conduit) = acceptor.accept().await {
                server.spawn(echo(conduit)).forget();
            }
        })
        .forget();
        churn(&h, &dialer);
        attempts(&clock, |n| {
            let (h, dialer, clock) = (h.clone(), dialer.clone(), clock.clone());
            async move {
                let Ok(link) = relay_source(&h, &dialer).next_link().await else { return false };
                let Ok(client) =
                    BareConduit::<_, KitFamily>::connect_within(link, SessionRole::Initiator, clock, CONFIG.timeout_ms)
                        .await
                else {
                    return false;
                };
                round_trip(client, n).await
            }
        })
        .await
    };
    rt.run(main, Instant::from_millis(60_000)).expect("the simulation finishes")
}

// r[verify core.churn]
#[test]
fn idle_connections_at_1000_a_second_do_not_lock_out_a_client_behind_a_50_ms_relay_stable() {
    let served = stable_served(AcceptorConfig::DEFAULT_PENDING);
    println!("stable acceptor, 1,024 places: {served} of {ATTEMPTS} clients served");
    assert_eq!(served, ATTEMPTS, "every client is served: 1,000/s × 50 ms < 1,024 places");
    let served = stable_served(32);
    println!("stable acceptor, 32 places: {served} of {ATTEMPTS} clients served");
    assert_eq!(served, 0, "the bound is sharp: 1,000/s × 50 ms > 32 places");
}

// r[verify core.churn]
#[test]
fn idle_connections_at_1000_a_second_do_not_lock_out_a_client_behind_a_50_ms_relay_bare() {
    let served = bare_served::<1024>();
    println!("bare acceptor, 1,024 places: {served} of {ATTEMPTS} clients served");
    assert_eq!(served, ATTEMPTS, "every client is served: 1,000/s × 50 ms < 1,024 places");
    let served = bare_served::<32>();
    println!("bare acceptor, 32 places: {served} of {ATTEMPTS} clients served");
    assert_eq!(served, 0, "the bound is sharp: 1,000/s × 50 ms > 32 places");
}
