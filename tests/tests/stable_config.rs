//! Configurations that cannot work are typed errors before anything is
//! sent: contradicting timings, a message larger than the rings, a data
//! frame larger than the link's payload.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_stable::{ConfigError, SessionError, StableConduit, StableConfig, StableStorage};
use vox_link_embedded::sim::memory_link_source;
use vox_tests::conduit_kit::KitFamily;
use vox_tests::stable_harness::{FAST, TestStable, TestStorage, TokioClock, rng};
use vox_types::LinkRx;

// r[verify stable.config.check]
#[test]
fn contradicting_timings_are_refused() {
    let cases = [
        (StableConfig { ack_every: 0, ..FAST }, ConfigError::AckEveryZero),
        (StableConfig { keepalive_ms: 0, ..FAST }, ConfigError::KeepaliveZero),
        (
            StableConfig { keepalive_ms: 300, timeout_ms: 300, ..FAST },
            ConfigError::KeepaliveNotBelowTimeout { keepalive_ms: 300, timeout_ms: 300 },
        ),
        (
            StableConfig { timeout_ms: 0, keepalive_ms: 1, ..FAST },
            ConfigError::KeepaliveNotBelowTimeout { keepalive_ms: 1, timeout_ms: 0 },
        ),
        (
            StableConfig { ack_delay_ms: 400, ..FAST },
            ConfigError::AckDelayNotBelowTimeout { ack_delay_ms: 400, timeout_ms: 300 },
        ),
        (StableConfig { linger_ms: 100, ..FAST }, ConfigError::LingerBelowTimeout { linger_ms: 100, timeout_ms: 300 }),
    ];
    for (config, expected) in cases {
        assert_eq!(config.check(), Err(expected));
        let made = TestStable::initiator(Arc::new(TestStorage::new()), config);
        assert_eq!(made.err(), Some(expected), "the constructor refuses it too");
        assert!(!expected.to_string().is_empty());
    }
    assert_eq!(FAST.check(), Ok(()));
    assert_eq!(StableConfig::DEFAULT.check(), Ok(()));
}

#[test]
fn a_message_larger_than_a_ring_or_rings_without_entries_are_refused() {
    let big = StableConfig { max_message: 600, ..FAST };
    assert_eq!(
        TestStable::acceptor(Arc::new(TestStorage::new()), big).err(),
        Some(ConfigError::MessageLargerThanReceive { max_message: 600, receive_bytes: 512 })
    );
    let bigger = StableConfig { max_message: 2000, ..FAST };
    assert_eq!(
        TestStable::acceptor(Arc::new(TestStorage::new()), bigger).err(),
        Some(ConfigError::MessageLargerThanReplay { max_message: 2000, replay_bytes: 1024 })
    );
    type OneEntry = StableStorage<CriticalSectionRawMutex, 1024, 1, 512, 4>;
    assert_eq!(
        StableConduit::<KitFamily, OneEntry>::initiator(Arc::new(OneEntry::new()), FAST).err(),
        Some(ConfigError::TooFewReplayEntries { entries: 1 })
    );
    type NoRx = StableStorage<CriticalSectionRawMutex, 1024, 4, 512, 0>;
    assert_eq!(
        StableConduit::<KitFamily, NoRx>::initiator(Arc::new(NoRx::new()), FAST).err(),
        Some(ConfigError::NoReceiveEntries)
    );
}

/// `max_message: 3000` on a link of 1024-byte payloads: the driver ends
/// with the typed error when the link is attached, before sending on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_frame_larger_than_the_link_is_refused_before_anything_is_sent() {
    type Big = StableStorage<CriticalSectionRawMutex, 8192, 8, 8192, 8>;
    let config = StableConfig { max_message: 3000, ..FAST };
    let (dialer, mut listener) = memory_link_source::<CriticalSectionRawMutex, 4, 1024>([]);
    let (conduit, driver) = StableConduit::<KitFamily, Big>::acceptor(Arc::new(Big::new()), config).unwrap();
    let stats = conduit.stats_handle();
    let ended = tokio::time::timeout(Duration::from_secs(1), driver.run(dialer, rng(1), TokioClock)).await;
    let expected = ConfigError::LinkTooSmall { needed: 3000 + vox_conduit_stable::wire::MAX_HEADER, max_payload: 1024 };
    assert_eq!(ended.expect("at once"), Err(SessionError::Config(expected)));
    assert_eq!(stats.get().frames_sent, 0, "nothing was sent");
    let peer = vox_types::LinkSource::next_link(&mut listener).await.unwrap();
    let (_tx, mut rx) = vox_types::Link::split(peer);
    assert!(
        !matches!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await, Ok(Ok(Some(_)))),
        "the peer received nothing"
    );
}
