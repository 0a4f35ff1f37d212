//! StableConduit: exactly-once delivery over links that die, drop,
//! duplicate; session loss; acks; backpressure.

use vox_link_embedded::sim::FaultPlan;
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

/// The receiver is a `futures_core::Stream`: every message in order, then
/// `None` after the peer closed.
// r[verify host.stream]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stable_receiver_is_a_stream() {
    use futures::StreamExt;
    use vox_tests::conduit_kit::{KitFamily, kit_msg};
    use vox_tests::stable_harness::{TokioClock, acceptor, initiator, rng};
    use vox_types::{Conduit, ConduitTx, ConduitTxPermit};
    let (dialer, listener) = vox_link_embedded::sim::memory_link_source::<
        embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex,
        4,
        256,
    >([]);
    let (a, ad) = initiator();
    let (b, bd) = acceptor();
    tokio::spawn(ad.run(dialer, TokioClock));
    tokio::spawn(bd.run(listener, rng(1), TokioClock));
    let (atx, _arx) = a.split();
    let (_btx, brx) = b.split();
    let send = async {
        for id in 0..50 {
            atx.reserve().await.unwrap().send(kit_msg(id, "streamed")).unwrap();
        }
        atx.close().await.unwrap();
    };
    let ids = brx.map(|m| m.unwrap().get::<KitFamily>().id).collect::<Vec<u32>>();
    let ((), ids) = tokio::time::timeout(std::time::Duration::from_secs(10), async { tokio::join!(send, ids) })
        .await
        .expect("in time");
    assert_eq!(ids, (0..50).collect::<Vec<u32>>());
}

/// The session's end is one error item, then the stream ends.
#[tokio::test]
async fn the_stable_stream_yields_the_sessions_end_once_then_ends() {
    use futures::StreamExt;
    use vox_conduit_stable::{RecvError, SessionError};
    use vox_tests::stable_harness::{TokioClock, initiator};
    use vox_types::{Conduit, LinkError, LinkSource};
    struct Exhausted;
    impl LinkSource for Exhausted {
        type Link = vox_link_embedded::MemoryLink<embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex, 4, 256>;
        async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
            Err(LinkError::Closed)
        }
    }
    let (a, ad) = initiator();
    tokio::spawn(ad.run(Exhausted, TokioClock));
    let (_atx, mut arx) = a.split();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), arx.next()).await.expect("in time");
    assert!(matches!(first, Some(Err(RecvError::Session(SessionError::SourceClosed)))), "{:?}", first.map(|r| r.err()));
    assert!(arx.next().await.is_none(), "then the stream ends");
}
