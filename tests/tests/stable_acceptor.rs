//! `StableAcceptor`: many sessions through one listener, links routed to
//! their session by resume key, a bounded table that expires the oldest.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_stable::{RecvError, SessionError, StableAcceptor};
use vox_link_embedded::{FaultPlan, memory_link_source};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::{FAST, SharedDialer, TestStorage, TokioDelay, initiator, rng};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

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

// r[verify stable.acceptor]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_routed_by_key_and_the_oldest_expires() {
    // Link 0 (session 1's first) dies after 12 frames A→B.
    let (dialer, listener) =
        memory_link_source::<CriticalSectionRawMutex, 4, 256>([(FaultPlan::kill_after(12), FaultPlan::NONE)]);
    let dialer = SharedDialer(Arc::new(tokio::sync::Mutex::new(dialer)));
    let mut acceptor =
        StableAcceptor::<_, KitFamily, TestStorage, CriticalSectionRawMutex, _, 2>::new(listener, TokioDelay, FAST);
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sessions = counter.clone();
    tokio::spawn(async move {
        let mut seed = 100;
        while let Ok((conduit, driver, links)) = acceptor.accept().await {
            seed += 1;
            tokio::spawn(driver.run(links, rng(seed), TokioDelay));
            sessions.store(acceptor.sessions(), std::sync::atomic::Ordering::Relaxed);
            if accepted_tx.send(conduit).is_err() {
                break;
            }
        }
    });

    // Session 1: its first link dies mid-stream; it resumes through the
    // acceptor, which routes the new link to the same session.
    let (i1, d1) = initiator();
    let i1_task = tokio::spawn(d1.run(dialer.clone(), TokioDelay));
    let (i1tx, _i1rx) = i1.split();
    let c1 = accepted.recv().await.unwrap();
    let c1_stats = c1.stats_handle();
    let (_c1tx, mut c1rx) = c1.split();
    // Sender and receiver run together: the buffers are bounded.
    tokio::join!(send_range(&i1tx, 0..30), recv_range(&mut c1rx, 0..30));
    assert!(c1_stats.get().reattachments >= 1, "session 1 resumed: {:?}", c1_stats.get());
    assert!(accepted.try_recv().is_err(), "a resume is not a new session");

    // Session 2.
    let (i2, d2) = initiator();
    let _i2_task = tokio::spawn(d2.run(dialer.clone(), TokioDelay));
    let (i2tx, _i2rx) = i2.split();
    let c2 = accepted.recv().await.unwrap();
    let (_c2tx, mut c2rx) = c2.split();
    tokio::join!(send_range(&i2tx, 0..5), recv_range(&mut c2rx, 0..5));
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 2);

    // Session 3 fills a 2-session table: the oldest (session 1) expires.
    let (i3, d3) = initiator();
    let _i3_task = tokio::spawn(d3.run(dialer.clone(), TokioDelay));
    let (i3tx, _i3rx) = i3.split();
    let c3 = accepted.recv().await.unwrap();
    let (_c3tx, mut c3rx) = c3.split();
    tokio::join!(send_range(&i3tx, 0..5), recv_range(&mut c3rx, 0..5));
    let lost = tokio::time::timeout(Duration::from_secs(5), c1rx.recv()).await.expect("in time");
    assert_eq!(lost.err(), Some(RecvError::Session(SessionError::SessionLost)), "the expired session ends as lost");

    // Session 1's initiator loses its link (the expired session's driver
    // ended) and comes back: its key is gone, and it learns so.
    let i1_end = tokio::time::timeout(Duration::from_secs(5), i1_task).await.expect("in time").unwrap();
    assert_eq!(i1_end, Err(SessionError::SessionLost));
    // Session 2 still works after the expiry.
    tokio::join!(send_range(&i2tx, 5..10), recv_range(&mut c2rx, 5..10));
    drop(i1tx);
}
