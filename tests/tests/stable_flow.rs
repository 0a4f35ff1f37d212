//! Credit flow control keeps ordinary applications live: pipelined
//! request/response in one task up to the documented bound (and a visible
//! stall beyond it), separate sending and receiving tasks at any depth, a
//! reader that pauses; in memory and over loopback TCP.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use vox_conduit_stable::{StableConduit, StableConfig, StableStats, StableStorage, StableStore};
use vox_link_embedded::host::{TcpDialer, TcpListenerSource};
use vox_link_embedded::sim::memory_link_source;
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::{FAST, FRAMES, RX, TestStable, TokioClock, acceptor, initiator, rng};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

/// The bound of the test storage (`TestStorage`: 8 replay entries, 4
/// receive entries on both sides), as `StableConduit`'s docs state it.
const BOUND: u32 = (FRAMES as u32 - 1) + RX as u32 + (FRAMES as u32 - 1) + RX as u32;

/// Answers every request with the same id until the peer closes.
async fn echo_server<C: Conduit<Msg = KitFamily>>(conduit: C) -> u32 {
    let (tx, mut rx) = conduit.split();
    let mut answered = 0;
    while let Ok(Some(req)) = rx.recv().await {
        let id = req.get::<KitFamily>().id;
        // The request is held while waiting for room: the plain loop.
        let Ok(permit) = tx.reserve().await else { break };
        if permit.send(kit_msg(id, "reply")).is_err() {
            break;
        }
        answered += 1;
    }
    answered
}

/// One task: sends `n` requests, then reads `n` replies, checking order.
async fn pipelined_client<C: Conduit<Msg = KitFamily>>(conduit: C, n: u32) {
    let (tx, mut rx) = conduit.split();
    for id in 0..n {
        tx.reserve().await.expect("reserve").send(kit_msg(id, "")).expect("send");
    }
    for id in 0..n {
        let reply = rx.recv().await.expect("recv").expect("a reply");
        assert_eq!(reply.get::<KitFamily>().id, id, "in order, once");
    }
}

/// A sending task and a receiving task: `n` requests, every reply checked.
async fn two_task_client<C: Conduit<Msg = KitFamily>>(conduit: C, n: u32) {
    let (tx, mut rx) = conduit.split();
    let send = async {
        for id in 0..n {
            tx.reserve().await.expect("reserve").send(kit_msg(id, "")).expect("send");
        }
    };
    let receive = async {
        for id in 0..n {
            let reply = rx.recv().await.expect("recv").expect("a reply");
            assert_eq!(reply.get::<KitFamily>().id, id, "in order, once");
        }
    };
    tokio::join!(send, receive);
}

struct Pair {
    client: TestStable,
    server: TestStable,
}

fn memory_pair() -> Pair {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (client, cd) = initiator();
    let (server, sd) = acceptor();
    tokio::spawn(cd.run(dialer, TokioClock));
    tokio::spawn(sd.run(listener, rng(2), TokioClock));
    Pair { client, server }
}

fn clean(stats: &StableStats) -> bool {
    stats.reattachments == 0 && stats.timeouts == 0 && stats.gaps == 0 && stats.self_stalls == 0
}

// r[verify stable.flow.pipeline]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_pipelining_exactly_the_documented_bound_completes() {
    let Pair { client, server } = memory_pair();
    let (cs, ss) = (client.stats_handle(), server.stats_handle());
    tokio::spawn(echo_server(server));
    tokio::time::timeout(Duration::from_secs(10), pipelined_client(client, BOUND))
        .await
        .unwrap_or_else(|_| panic!("{BOUND} requests stalled:\n{:?}\n{:?}", cs.get(), ss.get()));
    assert!(clean(&cs.get()) && clean(&ss.get()), "{:?}\n{:?}", cs.get(), ss.get());
    println!("bound {BOUND}: client {:?}", cs.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_pipelining_beyond_the_bound_stalls_visibly() {
    let Pair { client, server } = memory_pair();
    let cs = client.stats_handle();
    tokio::spawn(echo_server(server));
    let (tx, _rx) = client.split();
    for id in 0..BOUND {
        tx.reserve().await.expect("reserve").send(kit_msg(id, "")).expect("send");
    }
    // Nobody reads the replies: one more request cannot find room, and
    // the conduit says why.
    let more = tokio::time::timeout(Duration::from_millis(u64::from(FAST.timeout_ms) * 3), tx.reserve()).await;
    assert!(more.is_err(), "request {} found room beyond the bound", BOUND + 1);
    let stats = cs.get();
    assert_eq!(stats.self_stalls, 1, "the stall is counted: {stats:?}");
    assert_eq!((stats.reattachments, stats.timeouts), (0, 0), "the line stays up: {stats:?}");
}

// r[verify stable.flow.no-stall]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_tasks_never_stall_at_any_depth_on_tiny_buffers() {
    let Pair { client, server } = memory_pair();
    let (cs, ss) = (client.stats_handle(), server.stats_handle());
    tokio::spawn(echo_server(server));
    tokio::time::timeout(Duration::from_secs(60), two_task_client(client, 20_000))
        .await
        .unwrap_or_else(|_| panic!("stalled:\n{:?}\n{:?}", cs.get(), ss.get()));
    assert!(clean(&cs.get()) && clean(&ss.get()), "{:?}\n{:?}", cs.get(), ss.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_pauses_costs_no_reattachment() {
    let Pair { client, server } = memory_pair();
    let (cs, ss) = (client.stats_handle(), server.stats_handle());
    let (tx, _crx) = client.split();
    let (_stx, mut srx) = server.split();
    let send = async {
        for id in 0..200 {
            tx.reserve().await.expect("reserve").send(kit_msg(id, "x")).expect("send");
        }
    };
    let receive = async {
        // Holds its receiver without reading for three silence timeouts.
        tokio::time::sleep(Duration::from_millis(u64::from(FAST.timeout_ms) * 3)).await;
        for id in 0..200 {
            assert_eq!(srx.recv().await.unwrap().unwrap().get::<KitFamily>().id, id);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(send, receive) }).await.expect("in time");
    assert!(clean(&cs.get()) && clean(&ss.get()), "{:?}\n{:?}", cs.get(), ss.get());
    assert!(cs.get().window_waits >= 1, "the sender waited for the window: {:?}", cs.get());
    assert!(ss.get().window_updates >= 1, "the reader reopened it: {:?}", ss.get());
}

/// The README's host sizes.
type HostStorage = StableStorage<CriticalSectionRawMutex, 4096, 32, 4096, 32>;
type HostConduit = StableConduit<KitFamily, HostStorage>;
const HOST_BOUND: u32 = 31 + 32 + 31 + 32;

async fn tcp_pair() -> (HostConduit, HostConduit) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = StableConfig { ack_every: 16, ..StableConfig::DEFAULT };
    let (client, cd) = HostConduit::initiator(Arc::new(HostStorage::new()), config).unwrap();
    let (server, sd) = HostConduit::acceptor(Arc::new(HostStorage::new()), config).unwrap();
    tokio::spawn(cd.run(TcpDialer::new(addr), TokioClock));
    tokio::spawn(sd.run(TcpListenerSource::new(listener), rng(3), TokioClock));
    (client, server)
}

fn stats_of<S: StableStore>(s: &S) -> StableStats {
    s.stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_tcp_100k_pipelined_requests_with_sender_and_reader_tasks_on_each_side() {
    const N: u32 = 100_000;
    let (client, server) = tcp_pair().await;
    let (cs, ss) = (client.stats_handle(), server.stats_handle());
    // The server also runs a receiving task and a sending task, joined by
    // a small channel.
    let server = async move {
        let (tx, mut rx) = server.split();
        let (ids_tx, mut ids_rx) = tokio::sync::mpsc::channel::<u32>(4);
        let receive = async move {
            while let Ok(Some(req)) = rx.recv().await {
                if ids_tx.send(req.get::<KitFamily>().id).await.is_err() {
                    break;
                }
            }
        };
        let send = async move {
            while let Some(id) = ids_rx.recv().await {
                tx.reserve().await.expect("reserve").send(kit_msg(id, "reply")).expect("send");
            }
        };
        tokio::join!(receive, send);
    };
    tokio::spawn(server);
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(120), two_task_client(client, N))
        .await
        .unwrap_or_else(|_| panic!("stalled:\n{:?}\n{:?}", cs.get(), ss.get()));
    let secs = started.elapsed().as_secs_f64();
    println!("{N} request/replies over loopback TCP in {secs:.2} s ({:.0}/s)", f64::from(N) / secs);
    assert!(clean(&cs.get()) && clean(&ss.get()), "{:?}\n{:?}", cs.get(), ss.get());
    let _ = stats_of::<HostStorage>;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_tcp_one_task_sends_exactly_the_bound_before_reading() {
    let (client, server) = tcp_pair().await;
    let (cs, ss) = (client.stats_handle(), server.stats_handle());
    tokio::spawn(echo_server(server));
    tokio::time::timeout(Duration::from_secs(20), pipelined_client(client, HOST_BOUND))
        .await
        .unwrap_or_else(|_| panic!("{HOST_BOUND} requests stalled:\n{:?}\n{:?}", cs.get(), ss.get()));
    assert!(clean(&cs.get()) && clean(&ss.get()), "{:?}\n{:?}", cs.get(), ss.get());
}
