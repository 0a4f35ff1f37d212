//! `StableAcceptor`: many sessions through one listener; links routed to
//! their session by resume key, also while the application is not in
//! `accept`; a full table refuses newcomers instead of evicting live
//! sessions; hostile connections delay no one.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use vox_conduit_stable::wire::RejectReason;
use vox_conduit_stable::{
    AcceptorConfig, RecvError, SessionError, StableAcceptor, StableConduit, StableConfig, StableStorage, StableStore,
};
use vox_link_embedded::host::{TcpDialer, TcpListenerSource};
use vox_link_embedded::{
    MemoryLink,
    sim::{FaultPlan, memory_link_source},
};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::{FAST, SharedDialer, TestStable, TestStorage, TokioClock, initiator, rng};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, LinkSource};

type Mem = MemoryLink<CriticalSectionRawMutex, 4, 256>;
type Accepted = vox_conduit_stable::AcceptedSession<KitFamily, TestStorage, CriticalSectionRawMutex, Mem>;

async fn send_range(tx: &impl ConduitTx<Msg = KitFamily>, ids: std::ops::Range<u32>) {
    for id in ids {
        tx.reserve().await.unwrap().send(kit_msg(id, "via acceptor")).unwrap();
    }
}

async fn recv_range(rx: &mut impl ConduitRx<Msg = KitFamily>, ids: std::ops::Range<u32>) {
    for id in ids {
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("in time").unwrap().unwrap();
        assert_eq!(m.get::<KitFamily>().id, id);
    }
}

/// An acceptor with a table of 2 on a memory listener, its runner spawned.
fn table_of_two<L: LinkSource<Link = Mem> + Send + 'static>(
    listener: L,
) -> StableAcceptor<KitFamily, TestStorage, CriticalSectionRawMutex, Mem> {
    let (acceptor, runner) = StableAcceptor::<KitFamily, TestStorage, CriticalSectionRawMutex, Mem>::new(
        listener,
        TokioClock,
        FAST,
        AcceptorConfig { pending: 16, ..AcceptorConfig::with_sessions(2) },
    )
    .unwrap();
    tokio::spawn(runner.run());
    acceptor
}

/// An acceptor with a table of 2 on a memory listener; its runner and an
/// application that accepts every session (spawning its driver) and hands
/// the conduits out.
fn memory_acceptor<L: LinkSource<Link = Mem> + Send + 'static>(
    listener: L,
) -> tokio::sync::mpsc::UnboundedReceiver<TestStable> {
    let mut acceptor = table_of_two(listener);
    let (accepted_tx, accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seed = 100;
        while let Ok((conduit, driver, links)) = acceptor.accept().await {
            seed += 1;
            tokio::spawn(driver.run(links, rng(seed), TokioClock));
            if accepted_tx.send(conduit).is_err() {
                break;
            }
        }
    });
    accepted
}

// r[verify stable.acceptor]
// r[verify stable.acceptor.eviction]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_routed_by_key_a_full_table_refuses_and_an_idle_session_expires() {
    // Link 0 (session 1's first) dies after 12 frames A→B.
    let (dialer, listener) =
        memory_link_source::<CriticalSectionRawMutex, 4, 256>([(FaultPlan::kill_after(12), FaultPlan::NONE)]);
    let dialer = SharedDialer(Arc::new(tokio::sync::Mutex::new(dialer)));
    let mut accepted = memory_acceptor(listener);

    // Session 1: its first link dies mid-stream; it resumes through the
    // acceptor, which routes the new link to the same session.
    let (i1, d1) = initiator();
    let i1_task = tokio::spawn(d1.run(dialer.clone(), TokioClock));
    let (i1tx, _i1rx) = i1.split();
    let c1 = accepted.recv().await.unwrap();
    let c1_stats = c1.stats_handle();
    let (_c1tx, mut c1rx) = c1.split();
    tokio::join!(send_range(&i1tx, 0..30), recv_range(&mut c1rx, 0..30));
    assert!(c1_stats.get().reattachments >= 1, "session 1 resumed: {:?}", c1_stats.get());
    assert!(accepted.try_recv().is_err(), "a resume is not a new session");

    // Session 2 fills the table.
    let (i2, d2) = initiator();
    let _i2_task = tokio::spawn(d2.run(dialer.clone(), TokioClock));
    let (i2tx, _i2rx) = i2.split();
    let c2 = accepted.recv().await.unwrap();
    let (_c2tx, mut c2rx) = c2.split();
    tokio::join!(send_range(&i2tx, 0..5), recv_range(&mut c2rx, 0..5));

    // Session 3: both sessions are live, so it is refused on the wire.
    let (_i3, d3) = initiator();
    let refused =
        tokio::time::timeout(Duration::from_secs(2), d3.run(dialer.clone(), TokioClock)).await.expect("quick");
    assert_eq!(refused, Err(SessionError::Rejected(RejectReason::TableFull)));
    tokio::join!(send_range(&i1tx, 30..35), recv_range(&mut c1rx, 30..35));

    // Session 1's initiator goes away; once its session has been silent
    // for its timeout, a newcomer may take its place, and it expires.
    i1_task.abort();
    let _ = i1_task.await;
    dialer.0.lock().await.kill_current();
    tokio::time::sleep(Duration::from_millis(u64::from(FAST.timeout_ms) * 2)).await;
    let (i4, d4) = initiator();
    let _i4_task = tokio::spawn(d4.run(dialer.clone(), TokioClock));
    let (i4tx, _i4rx) = i4.split();
    let c4 = accepted.recv().await.unwrap();
    let (_c4tx, mut c4rx) = c4.split();
    tokio::join!(send_range(&i4tx, 0..5), recv_range(&mut c4rx, 0..5));
    let lost = tokio::time::timeout(Duration::from_secs(5), c1rx.recv()).await.expect("in time");
    assert_eq!(lost.err(), Some(RecvError::Session(SessionError::SessionLost)), "the idle session expired");
    // Session 2 still works.
    tokio::join!(send_range(&i2tx, 5..10), recv_range(&mut c2rx, 5..10));
}

// r[verify stable.acceptor.routing]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_once_then_only_serves_survives_ten_link_cuts() {
    let cuts: Vec<_> = (0..10).map(|i| (FaultPlan::kill_after(20 + i), FaultPlan::NONE)).collect();
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>(cuts);
    let (mut acceptor, runner) = StableAcceptor::<KitFamily, TestStorage, CriticalSectionRawMutex, Mem>::new(
        listener,
        TokioClock,
        FAST,
        AcceptorConfig { pending: 16, ..AcceptorConfig::with_sessions(2) },
    )
    .unwrap();
    tokio::spawn(runner.run());
    let (client, cd) = initiator();
    let client_stats = client.stats_handle();
    tokio::spawn(cd.run(dialer, TokioClock));
    // One accept, and never again.
    let (server, sd, links): Accepted = acceptor.accept().await.unwrap();
    tokio::spawn(sd.run(links, rng(3), TokioClock));
    let (ctx, _crx) = client.split();
    let (_stx, mut srx) = server.split();
    tokio::join!(send_range(&ctx, 0..400), recv_range(&mut srx, 0..400));
    assert!(client_stats.get().reattachments >= 10, "{:?}", client_stats.get());
    drop(acceptor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_anonymous_hellos_against_a_full_table_are_refused_and_live_sessions_go_on() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let dialer = SharedDialer(Arc::new(tokio::sync::Mutex::new(dialer)));
    // The application keeps the acceptor (its statistics are read below).
    let mut acceptor = table_of_two(listener);
    let mut live = Vec::new();
    for seed in 0..2 {
        let (i, d) = initiator();
        tokio::spawn(d.run(dialer.clone(), TokioClock));
        let (itx, _irx) = i.split();
        let (conduit, driver, links) = acceptor.accept().await.unwrap();
        tokio::spawn(driver.run(links, rng(seed), TokioClock));
        let (_ctx, mut crx) = conduit.split();
        tokio::join!(send_range(&itx, 0..3), recv_range(&mut crx, 0..3));
        live.push((itx, _irx, _ctx, crx));
    }
    let started = Instant::now();
    let mut refusals = Vec::new();
    for _ in 0..100 {
        let (_i, d) = initiator();
        refusals.push(tokio::spawn(d.run(dialer.clone(), TokioClock)));
    }
    for r in refusals {
        let r = tokio::time::timeout(Duration::from_secs(5), r).await.expect("quick").unwrap();
        assert_eq!(r, Err(SessionError::Rejected(RejectReason::TableFull)));
    }
    // The full table was swept and searched at most once each per 100 ms,
    // not once per newcomer.
    let stats = acceptor.stats();
    let intervals = started.elapsed().as_millis() as u64 / vox_conduit_stable::acceptor_core::Sweep::FULL_RECHECK_MS;
    assert_eq!(stats.table_full, 100, "{stats:?}");
    assert!(stats.table_scans <= 2 * (intervals + 1), "{stats:?} in {:?}", started.elapsed());
    for (itx, _irx, _ctx, crx) in &mut live {
        tokio::join!(send_range(itx, 3..10), recv_range(crx, 3..10));
    }
    let next = tokio::time::timeout(Duration::from_millis(50), acceptor.accept()).await;
    assert!(next.is_err(), "no new session was accepted");
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

type HostStorage = StableStorage<CriticalSectionRawMutex, 4096, 32, 4096, 32>;

// r[verify stable.acceptor.concurrent]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stalled_and_garbage_connections_delay_no_legitimate_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = StableConfig { timeout_ms: 2000, keepalive_ms: 500, linger_ms: 2000, ..StableConfig::DEFAULT };
    let (mut acceptor, runner) = StableAcceptor::<KitFamily, HostStorage, CriticalSectionRawMutex, _>::new(
        TcpListenerSource::new(listener),
        TokioClock,
        config,
        // 1,024 handshake places (the default): the 200 connections that
        // present a prologue and then stall keep theirs until the
        // handshake timeout, and still leave room.
        AcceptorConfig::with_sessions(8),
    )
    .unwrap();
    tokio::spawn(runner.run());
    tokio::spawn(async move {
        while let Ok((conduit, driver, links)) = acceptor.accept().await {
            tokio::spawn(driver.run(links, rng(9), TokioClock));
            tokio::spawn(async move {
                let (tx, mut rx) = conduit.split();
                while let Ok(Some(m)) = rx.recv().await {
                    let id = m.get::<KitFamily>().id;
                    if tx.reserve().await.unwrap().send(kit_msg(id, "reply")).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let before = rss_kib();
    let mut hostile = Vec::new();
    let mut prologue = [0u8; 32];
    let n = vox_types::Prologue::new(
        vox_types::ConduitMode::Stable,
        vox_types::SessionRole::Initiator,
        <KitFamily as vox_types::MsgFamily>::FINGERPRINT,
    )
    .encode(&mut prologue)
    .unwrap();
    let mut framed_prologue = [0u8; 64];
    let m = vox_link_embedded::framed::codec::encode_frame(&prologue[..n], &mut framed_prologue).unwrap();
    for kind in 0..3 {
        for _ in 0..200 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            match kind {
                // Idle.
                0 => {}
                // A prologue, then nothing.
                1 => s.write_all(&[&[0u8][..], &framed_prologue[..m]].concat()).await.unwrap(),
                // Bytes with no delimiter.
                _ => s.write_all(&[0x55; 512]).await.unwrap(),
            }
            hostile.push(s);
        }
    }
    // A legitimate client while all of them are held.
    let (client, cd) =
        StableConduit::<KitFamily, HostStorage>::initiator(Arc::new(HostStorage::new()), config).unwrap();
    let started = Instant::now();
    tokio::spawn(cd.run(TcpDialer::new(addr), TokioClock));
    let (ctx, mut crx) = client.split();
    ctx.reserve().await.unwrap().send(kit_msg(1, "hello")).unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), crx.recv()).await.expect("a reply").unwrap().unwrap();
    let took = started.elapsed();
    assert_eq!(reply.get::<KitFamily>().id, 1);
    let grown = rss_kib().saturating_sub(before);
    println!("first reply after {took:?} behind 600 hostile connections; RSS grew {grown} KiB");
    assert!(took < Duration::from_millis(100), "first reply after {took:?}");
    assert!(grown < 64 * 1024, "memory stays bounded: {grown} KiB");
    drop(hostile);
    let _ = HostStorage::new().stats();
}
