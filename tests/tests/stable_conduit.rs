//! StableConduit: exactly-once delivery over links that die, drop,
//! duplicate; session loss; acks; backpressure.

use vox_link_embedded::FaultPlan;
use vox_tests::stable_harness::exchange;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_exchange_delivers_everything_and_finishes() {
    let (a, b) = exchange(50, vec![]).await;
    let expected: Vec<u32> = (0..50).collect();
    assert_eq!(a.received, expected);
    assert_eq!(b.received, expected);
    assert_eq!((a.driver.clone(), b.driver.clone()), (Ok(()), Ok(())));
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
