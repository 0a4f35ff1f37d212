//! One link source serves sessions one after another: a listener and a
//! dialer lent to each session's driver (`run(&mut source, ..)`) are never
//! rebuilt or rebound between sessions.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::host::{TcpDialer, TcpListenerSource, TokioClock};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::rng;
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

type Storage = StableStorage<CriticalSectionRawMutex, 4096, 16, 4096, 16>;

// r[verify found.source-reuse]
#[tokio::test(flavor = "current_thread")]
async fn three_sessions_in_a_row_on_one_listener_and_one_dialer() {
    let mut listener = TcpListenerSource::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
    let addr = listener.local_addr().unwrap();
    let mut dialer = TcpDialer::new(addr);
    for session in 0..3u32 {
        let (host, host_driver) =
            StableConduit::<KitFamily, Storage>::acceptor(Arc::new(Storage::new()), StableConfig::DEFAULT).unwrap();
        let (device, device_driver) =
            StableConduit::<KitFamily, Storage>::initiator(Arc::new(Storage::new()), StableConfig::DEFAULT).unwrap();
        let host_app = async {
            let (tx, mut rx) = host.split();
            let got = rx.recv().await.unwrap().unwrap();
            assert_eq!(got.get::<KitFamily>(), &kit_msg(session, "ping"));
            tx.reserve().await.unwrap().send(kit_msg(session, "pong")).unwrap();
            drop(tx);
            assert!(rx.recv().await.unwrap().is_none(), "the device closed");
        };
        let device_app = async {
            let (tx, mut rx) = device.split();
            tx.reserve().await.unwrap().send(kit_msg(session, "ping")).unwrap();
            let got = rx.recv().await.unwrap().unwrap();
            assert_eq!(got.get::<KitFamily>(), &kit_msg(session, "pong"));
            drop(tx);
            assert!(rx.recv().await.unwrap().is_none(), "the host closed");
        };
        let all = async {
            tokio::join!(
                host_driver.run(&mut listener, rng(u64::from(session)), TokioClock),
                device_driver.run(&mut dialer, TokioClock),
                host_app,
                device_app
            )
        };
        let (host_end, device_end, (), ()) =
            tokio::time::timeout(Duration::from_secs(10), all).await.expect("the session completes");
        assert_eq!(host_end, Ok(()), "session {session}: the host's driver finished");
        assert_eq!(device_end, Ok(()), "session {session}: the device's driver finished");
    }
}

/// A dialer whose backoff gives up ends the session with a typed error
/// instead of being asked again forever.
// r[verify found.dialer-list]
#[tokio::test(flavor = "current_thread")]
async fn a_dialer_that_gives_up_ends_the_session() {
    use vox_conduit_stable::SessionError;
    use vox_link_embedded::host::Backoff;
    // Bound but not listening: refused at once, the port held.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = held.local_addr().unwrap();
    let backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: Some(2) };
    let mut dialer = TcpDialer::new(dead).with_backoff(backoff);
    let (_device, driver) =
        StableConduit::<KitFamily, Storage>::initiator(Arc::new(Storage::new()), StableConfig::DEFAULT).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), driver.run(&mut dialer, TokioClock)).await;
    assert_eq!(ended.expect("the driver ends"), Err(SessionError::SourceClosed));
}
