//! StableConduit: exactly-once delivery over links that die, drop,
//! duplicate; session loss; acks; backpressure.

use vox_link_embedded::FaultPlan;
use vox_tests::stable_harness::exchange;

/// The initiator's driver takes no random number generator (a type-level
/// role): it still survives link kills, keys coming from the acceptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initiator_runs_without_an_rng_across_link_kills() {
    let (a, b) = exchange(60, vec![(FaultPlan::kill_after(7), FaultPlan::kill_after(9))]).await;
    let expected: Vec<u32> = (0..60).collect();
    assert_eq!((a.received, b.received), (expected.clone(), expected));
    assert_eq!((a.driver, b.driver), (Ok(()), Ok(())));
    assert!(a.stats.reattachments + b.stats.reattachments >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_exchange_delivers_everything_and_finishes() {
    let (a, b) = exchange(50, vec![]).await;
    let expected: Vec<u32> = (0..50).collect();
    assert_eq!(a.received, expected);
    assert_eq!(b.received, expected);
    assert_eq!((a.driver, b.driver), (Ok(()), Ok(())));
    println!("{:?}\n{:?}", a.stats, b.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kill_mid_stream_is_invisible() {
    let (a, b) = exchange(50, vec![(FaultPlan::kill_after(10), FaultPlan::NONE)]).await;
    let expected: Vec<u32> = (0..50).collect();
    assert_eq!(a.received, expected);
    assert_eq!(b.received, expected);
    println!("{:?}\n{:?}", a.stats, b.stats);
    assert!(a.stats.reattachments >= 1 || b.stats.reattachments >= 1);
}
