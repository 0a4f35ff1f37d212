//! The firmware self-test's scenario on the host: two stable conduits with
//! small buffers (2 link slots of 128 bytes, 1 KiB replay) on a noisy
//! in-memory serial line with static link storage.

use embassy_futures::join::join;
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::time::Duration;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_demo_protocol::{DemoFamily, DemoMsg};
use vox_link_embedded::LinkChannel;
use vox_link_embedded::{
    FramedLink, FramedLinkStorage, FramedPort,
    sim::{BytePipe, NoiseRates, NoisyWriter, PipeReader, PipeWriter},
};
use vox_tests::stable_harness::TokioClock;
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

type M = CriticalSectionRawMutex;
const MTU: usize = 128;
type TestLink = FramedLink<M, 2, MTU>;
type TestStorage = StableStorage<M, 1024, 16, 512, 4>;
type TestConduit = StableConduit<DemoFamily, TestStorage>;

const CONFIG: StableConfig = StableConfig {
    max_message: 100,
    ack_every: 4,
    ack_delay_ms: 5,
    keepalive_ms: 60,
    timeout_ms: 250,
    retry_delay_ms: 5,
    linger_ms: 600,
    connect_timeout_ms: 10_000,
};

fn leak<T>(t: T) -> &'static T {
    Box::leak(Box::new(t))
}

async fn serial_port(
    storage: &'static FramedLinkStorage<M, 2, MTU>,
    links: &'static LinkChannel<M, TestLink>,
    from: &'static BytePipe<M, 256>,
    to: &'static BytePipe<M, 256>,
    seed: u64,
    noise_ppm: u32,
) {
    let mut reader = PipeReader(from);
    let mut writer = NoisyWriter::new(PipeWriter(to), NoiseRates::uniform(noise_ppm), seed);
    // A byte pipe never fails: this serves for as long as the test runs.
    let _ = FramedPort::new(storage).serve(&mut reader, &mut writer, &TokioClock, |link| links.offer(link)).await;
}

async fn exchange(conduit: TestConduit, n: u32) -> u32 {
    let (tx, mut rx) = conduit.split();
    let send = async move {
        for seq in 0..n {
            let Ok(permit) = tx.reserve().await else { return };
            if permit.send(DemoMsg::Telemetry { seq, millivolts: 3300, label: "selftest" }).is_err() {
                return;
            }
        }
    };
    let receive = async {
        let mut next = 0u32;
        while let Ok(Some(msg)) = rx.recv().await {
            match msg.get::<DemoFamily>() {
                DemoMsg::Telemetry { seq, .. } if *seq == next => next += 1,
                _ => return u32::MAX,
            }
        }
        next
    };
    join(send, receive).await.1
}

#[tokio::test]
async fn small_buffers_noisy_line_static_links() {
    let (ab, ba) = (leak(BytePipe::<M, 256>::new()), leak(BytePipe::<M, 256>::new()));
    let (link_a, link_b) = (leak(FramedLinkStorage::<M, 2, MTU>::new()), leak(FramedLinkStorage::<M, 2, MTU>::new()));
    let (links_a, links_b) = (leak(LinkChannel::<M, TestLink>::new()), leak(LinkChannel::<M, TestLink>::new()));
    let (ca, cb) = (leak(TestStorage::new()), leak(TestStorage::new()));
    let (a, driver_a) = TestConduit::initiator(ca, CONFIG).unwrap();
    let (b, driver_b) = TestConduit::acceptor(cb, CONFIG).unwrap();
    let (sa, sb) = (a.stats_handle(), b.stats_handle());
    let ports = select(serial_port(link_a, links_a, ba, ab, 1, 300), serial_port(link_b, links_b, ab, ba, 2, 300));
    let drivers = join(
        driver_a.run(links_a.receiver(), TokioClock),
        driver_b.run(links_b.receiver(), ChaCha8Rng::seed_from_u64(2), TokioClock),
    );
    let work = join(drivers, join(exchange(a, 1000), exchange(b, 1000)));
    let limited = tokio::time::timeout(Duration::from_secs(30), select(work, ports)).await;
    println!("a {:?}\nb {:?}\nlinks {:?} {:?}", sa.get(), sb.get(), link_a.stats(), link_b.stats());
    let ((ra, rb), (got_a, got_b)) = match limited {
        Ok(Either::First(done)) => done,
        _ => panic!("stuck"),
    };
    assert_eq!((ra, rb, got_a, got_b), (Ok(()), Ok(()), 1000, 1000));
}
