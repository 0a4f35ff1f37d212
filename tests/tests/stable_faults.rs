//! The stable conduit's deterministic fault suite on the fault-injecting
//! memory link: kills at every position, dropped and duplicated frames,
//! peer restarts, one-way traffic, a full replay buffer, silence; and a
//! property test over random fault schedules.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_stable::{RecvError, SendError, SessionError};
use vox_link_embedded::{
    MemoryLink, MemoryLinkPair,
    sim::{FaultPlan, MemoryDialer, memory_link_source},
};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::{
    BYTES, FAST, FRAMES, RX, SharedDialer, SideReport, TokioClock, acceptor, exchange, exchange_asym, initiator, rng,
    text_for,
};
use vox_types::{Conduit, ConduitError, ConduitRx, ConduitTx, ConduitTxPermit, ErrorKind, LinkError, LinkSource};

type Mem = MemoryLink<CriticalSectionRawMutex, 4, 256>;

fn ids(n: u32) -> Vec<u32> {
    (0..n).collect()
}

fn assert_exact(a: &SideReport, b: &SideReport, na: u32, nb: u32, what: &str) {
    assert_eq!(b.received, ids(na), "B's messages, {what}");
    assert_eq!(a.received, ids(nb), "A's messages, {what}");
    assert_eq!(a.driver, Ok(()), "A's driver, {what}");
    assert_eq!(b.driver, Ok(()), "B's driver, {what}");
    for s in [&a.stats, &b.stats] {
        assert!(s.replay_frames_high as usize <= FRAMES && s.replay_bytes_high as usize <= BYTES, "{what}: {s:?}");
    }
}

// r[verify stable.exactly-once]
// r[verify stable.replay.order]
// r[verify stable.link-source]
// r[verify stable.handshake]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_killed_at_every_position_in_both_directions() {
    let mut reattachments = 0;
    for k in 0..50 {
        for (dir, plan) in [
            ("A->B", (FaultPlan::kill_after(k), FaultPlan::NONE)),
            ("B->A", (FaultPlan::NONE, FaultPlan::kill_after(k))),
        ] {
            let (a, b) = exchange(20, vec![plan]).await;
            assert_exact(&a, &b, 20, 20, &format!("kill after {k} frames {dir}"));
            reattachments += a.stats.reattachments + b.stats.reattachments;
        }
    }
    println!("reattachments forced by the kills: {reattachments}");
    assert!(reattachments >= 50, "the kills forced reattachments: {reattachments}");
}

// r[verify stable.gap]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_frame_is_a_gap_then_reattach_and_replay() {
    let (mut gaps, mut replays) = (0, 0);
    for k in 0..50 {
        for plan in [(FaultPlan::drop_nth(k), FaultPlan::NONE), (FaultPlan::NONE, FaultPlan::drop_nth(k))] {
            let (a, b) = exchange(20, vec![plan]).await;
            assert_exact(&a, &b, 20, 20, &format!("drop frame {k}"));
            gaps += a.stats.gaps + b.stats.gaps;
            replays += a.stats.replays + b.stats.replays;
        }
    }
    assert!(gaps >= 30 && replays > 0, "gaps {gaps}, replays {replays}");
}

// r[verify stable.seq]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_frame_is_dropped() {
    let mut duplicates = 0;
    for k in 0..50 {
        for plan in [(FaultPlan::duplicate_nth(k), FaultPlan::NONE), (FaultPlan::NONE, FaultPlan::duplicate_nth(k))] {
            let (a, b) = exchange(20, vec![plan]).await;
            assert_exact(&a, &b, 20, 20, &format!("duplicate frame {k}"));
            duplicates += a.stats.duplicates + b.stats.duplicates;
        }
    }
    assert!(duplicates >= 20, "duplicates dropped: {duplicates}");
}

// r[verify stable.ack]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_traffic_drains_the_replay_buffer_with_ack_only_frames() {
    // 300 messages through an 8-frame replay buffer: only acks let A go on.
    let (a, b) = exchange_asym(300, 0, vec![]).await;
    assert_exact(&a, &b, 300, 0, "one-way");
    assert!(b.stats.acks_sent >= 300 / u64::from(FAST.ack_every) / 2, "B acked: {:?}", b.stats);
    assert_eq!((a.stats.replay_frames, a.stats.replay_bytes), (0, 0), "A's replay drained");
}

async fn send_ids(tx: &impl ConduitTx<Msg = KitFamily>, ids: std::ops::Range<u32>) {
    for id in ids {
        let text = text_for(id);
        tx.reserve().await.unwrap().send(kit_msg(id, &text)).unwrap();
    }
}

async fn recv_ids(rx: &mut impl ConduitRx<Msg = KitFamily>, ids: std::ops::Range<u32>) {
    for id in ids {
        let m = rx.recv().await.unwrap().unwrap();
        assert_eq!(m.get::<KitFamily>().id, id);
    }
}

// r[verify stable.session-lost]
// r[verify stable.resume-key]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_restart_is_session_lost_for_the_initiator() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let listener = Arc::new(tokio::sync::Mutex::new(listener));
    struct SharedListener(
        Arc<tokio::sync::Mutex<vox_link_embedded::sim::MemoryListener<CriticalSectionRawMutex, 4, 256>>>,
    );
    impl LinkSource for SharedListener {
        type Link = Mem;
        async fn next_link(&mut self) -> Result<Mem, LinkError> {
            self.0.lock().await.accept().await
        }
    }
    let dialer = SharedDialer(Arc::new(tokio::sync::Mutex::new(dialer)));
    let (a, a_driver) = initiator();
    let (b1, b1_driver) = acceptor();
    let a_task = tokio::spawn(a_driver.run(dialer.clone(), TokioClock));
    let b1_task = tokio::spawn(b1_driver.run(SharedListener(listener.clone()), rng(2), TokioClock));
    let (atx, mut arx) = a.split();
    let (_b1tx, mut b1rx) = b1.split();
    send_ids(&atx, 0..5).await;
    recv_ids(&mut b1rx, 0..5).await;

    // The acceptor "reboots": its session state is gone; the link dies.
    b1_task.abort();
    let _ = b1_task.await;
    drop((_b1tx, b1rx));
    let (b2, b2_driver) = acceptor();
    let _b2_task = tokio::spawn(b2_driver.run(SharedListener(listener), rng(3), TokioClock));
    dialer.0.lock().await.kill_current();

    let lost = tokio::time::timeout(Duration::from_secs(5), arx.recv()).await.expect("in time");
    assert_eq!(lost.as_ref().err(), Some(&RecvError::Session(SessionError::SessionLost)));
    assert!(matches!(atx.reserve().await, Err(SendError::Session(SessionError::SessionLost))));
    // r[verify found.error-kind]
    assert_eq!(lost.err().map(|e| e.kind()), Some(ErrorKind::SessionLost), "what a layer above sees");
    assert_eq!(atx.reserve().await.err().map(|e| e.kind()), Some(ErrorKind::SessionLost));
    assert_eq!(a_task.await.unwrap(), Err(SessionError::SessionLost));
    drop(b2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_restart_is_session_lost_for_the_acceptor() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let dialer = SharedDialer(Arc::new(tokio::sync::Mutex::new(dialer)));
    let (a1, a1_driver) = initiator();
    let (b, b_driver) = acceptor();
    let a1_task = tokio::spawn(a1_driver.run(dialer.clone(), TokioClock));
    let b_task = tokio::spawn(b_driver.run(listener, rng(2), TokioClock));
    let (a1tx, _a1rx) = a1.split();
    let (btx, mut brx) = b.split();
    send_ids(&a1tx, 0..5).await;
    recv_ids(&mut brx, 0..5).await;

    // The initiator "reboots" and starts a new session on a new link.
    a1_task.abort();
    let _ = a1_task.await;
    dialer.0.lock().await.kill_current();
    let (a2, a2_driver) = initiator();
    let _a2_task = tokio::spawn(a2_driver.run(dialer, TokioClock));

    let lost = tokio::time::timeout(Duration::from_secs(5), brx.recv()).await.expect("in time");
    assert_eq!(lost.err(), Some(RecvError::Session(SessionError::SessionLost)));
    assert!(matches!(btx.reserve().await, Err(SendError::Session(SessionError::SessionLost))));
    assert_eq!(b_task.await.unwrap(), Err(SessionError::SessionLost));
    assert_ne!(SessionError::SessionLost.to_string(), "");
    drop((a1tx, a2));
}

// r[verify stable.replay]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replay_buffer_makes_reserve_wait_then_proceed() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (a, a_driver) = initiator();
    let (b, b_driver) = acceptor();
    let stats = a.stats_handle();
    let _a_task = tokio::spawn(a_driver.run(dialer, TokioClock));
    let _b_task = tokio::spawn(b_driver.run(listener, rng(2), TokioClock));
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    // Nothing is reported sent before the first handshake: `reserve`
    // waits for it, then proceeds.
    let first = tokio::time::timeout(Duration::from_secs(5), atx.reserve()).await.expect("after the handshake");
    first.unwrap().send(kit_msg(0, &text_for(0))).unwrap();
    // B's application does not read: its window closes after its receive
    // ring is full, and A's replay ring fills behind it.
    let mut sent = 1u32;
    while let Ok(permit) = tokio::time::timeout(Duration::from_millis(200), atx.reserve()).await {
        permit.unwrap().send(kit_msg(sent, &text_for(sent))).unwrap();
        sent += 1;
        assert!(sent as usize <= FRAMES + RX, "the buffers are bounded: {sent}");
    }
    let s = stats.get();
    assert!(s.replay_frames as usize <= FRAMES && s.replay_bytes as usize <= BYTES, "{s:?}");
    assert!(s.replay_frames >= 2, "the replay ring holds what the window kept back: {s:?}");
    // B reads: the window opens, acks drain A's ring, reserve proceeds.
    let waiting = atx.reserve();
    let reading = recv_ids(&mut brx, 0..sent);
    let (permit, ()) = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(waiting, reading) })
        .await
        .expect("reserve proceeds");
    permit.unwrap().send(kit_msg(sent, &text_for(sent))).unwrap();
    recv_ids(&mut brx, sent..sent + 1).await;
}

/// A source whose first link goes nowhere (the peer never answers).
struct SilentFirst {
    silent: Option<(Mem, Mem)>,
    inner: MemoryDialer<CriticalSectionRawMutex, 4, 256>,
}

impl LinkSource for SilentFirst {
    type Link = Mem;
    async fn next_link(&mut self) -> Result<Mem, LinkError> {
        match self.silent.take() {
            Some((mine, theirs)) => {
                std::mem::forget(theirs); // alive, never serviced
                Ok(mine)
            }
            None => Ok(self.inner.connect()),
        }
    }
}

// r[verify stable.liveness]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_attachment_times_out_and_idle_peers_keep_alive() {
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let source = SilentFirst { silent: Some(MemoryLinkPair::new_shared()), inner: dialer };
    let (a, a_driver) = initiator();
    let (b, b_driver) = acceptor();
    let (sa, sb) = (a.stats_handle(), b.stats_handle());
    let _a_task = tokio::spawn(a_driver.run(source, TokioClock));
    let _b_task = tokio::spawn(b_driver.run(listener, rng(2), TokioClock));
    let (atx, _arx) = a.split();
    let (_btx, mut brx) = b.split();
    send_ids(&atx, 0..3).await;
    recv_ids(&mut brx, 0..3).await;
    assert_eq!(sa.get().timeouts, 1, "the silent first link was declared dead");
    // Idle for several timeouts: keepalives keep the attachment alive.
    let before = (sa.get(), sb.get());
    tokio::time::sleep(Duration::from_millis(u64::from(FAST.timeout_ms) * 4)).await;
    let after = (sa.get(), sb.get());
    assert_eq!((after.0.timeouts, after.1.timeouts), (before.0.timeouts, before.1.timeouts), "no timeout while idle");
    assert_eq!(after.0.reattachments, before.0.reattachments);
    assert!(after.0.acks_sent > before.0.acks_sent && after.1.acks_sent > before.1.acks_sent, "keepalives went out");
    send_ids(&atx, 3..4).await;
    recv_ids(&mut brx, 3..4).await;
}

fn plan_strategy() -> impl Strategy<Value = FaultPlan> {
    prop_oneof![
        Just(FaultPlan::NONE),
        (0u32..60).prop_map(FaultPlan::kill_after),
        (0u32..60).prop_map(FaultPlan::drop_nth),
        (0u32..60).prop_map(FaultPlan::duplicate_nth),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random fault schedules, both directions at once, different message
    /// counts: received == sent exactly; replay occupancy within bounds.
    #[test]
    fn random_fault_schedules_never_lose_duplicate_or_reorder(
        schedule in prop::collection::vec((plan_strategy(), plan_strategy()), 0..5),
        na in 0u32..40,
        nb in 0u32..40,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (a, b) = rt.block_on(exchange_asym(na, nb, schedule.clone()));
        assert_exact(&a, &b, na, nb, &format!("{schedule:?}"));
    }
}
