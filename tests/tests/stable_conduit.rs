//! StableConduit: exactly-once delivery over links that die, drop,
//! duplicate; session loss; acks; backpressure.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use vox_conduit_stable::StableError;
use vox_link_embedded::{FaultPlan, memory_link_source};
use vox_tests::stable_harness::{FAST, TestStable, TokioDelay, exchange, exchange_initiator_without_rng};
use vox_types::SessionRole;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initiator_runs_without_an_rng_across_link_kills() {
    let (a, b) = exchange_initiator_without_rng(60, vec![(FaultPlan::kill_after(7), FaultPlan::kill_after(9))]).await;
    let expected: Vec<u32> = (0..60).collect();
    assert_eq!((a.received, b.received), (expected.clone(), expected));
    assert_eq!((a.driver, b.driver), (Ok(()), Ok(())));
    assert!(a.stats.reattachments + b.stats.reattachments >= 1);
}

#[tokio::test]
async fn an_acceptor_without_an_rng_is_refused_with_a_typed_error() {
    let (_dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>(vec![]);
    let (_conduit, driver) = TestStable::new_shared(SessionRole::Acceptor, FAST);
    assert_eq!(driver.run_initiator(listener, TokioDelay).await, Err(StableError::AcceptorNeedsRng));
}

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
