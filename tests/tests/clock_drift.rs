//! The stable driver tells its core the clock's time, so timers do not
//! drift when the clock wakes it late (tokio wakes a sleep a millisecond or
//! more after its deadline; counting ticks made keepalives come every
//! 273 ms instead of 250 ms). Here every sleep wakes 3 ms late, on the
//! simulated clock.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_stable::{StableConduit, StableConfig, StableStats};
use vox_link_embedded::sim::{SimClock, memory_link_source};
use vox_tests::conduit_kit::KitFamily;
use vox_tests::sim_runtime::SimRuntime;
use vox_tests::stable_harness::{TestStorage, rng};
use vox_types::{Clock, Instant, MaybeSend};

/// A clock whose every sleep wakes `LATE_MS` after its deadline.
#[derive(Clone)]
struct LateClock(SimClock);

const LATE_MS: u64 = 3;

impl Clock for LateClock {
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + MaybeSend {
        self.0.sleep_until(at.add_millis(LATE_MS))
    }
}

// r[verify time.clock]
#[test]
fn keepalives_keep_their_period_on_a_clock_that_wakes_late() {
    const IDLE: Duration = Duration::from_secs(60);
    let config = StableConfig::DEFAULT;
    let mut rt = SimRuntime::new();
    let h = rt.handle();
    let main = async move {
        let clock = LateClock(h.clock());
        let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
        let (a, a_driver) =
            StableConduit::<KitFamily, TestStorage>::initiator(Arc::new(TestStorage::new()), config).unwrap();
        let (b, b_driver) =
            StableConduit::<KitFamily, TestStorage>::acceptor(Arc::new(TestStorage::new()), config).unwrap();
        let _a = h.spawn(a_driver.run(dialer, clock.clone()));
        let _b = h.spawn(b_driver.run(listener, rng(1), clock));
        h.clock().sleep(IDLE).await;
        (a.stats(), b.stats())
    };
    let (a, b): (StableStats, StableStats) = rt.run(main, Instant::from_millis(120_000)).unwrap();
    // Each side sends a keepalive when `keepalive_ms` have passed since
    // its last frame, checked every tick (20 ms here, +3 ms late): at most
    // keepalive + tick + lateness apart. Counting ticks instead would
    // stretch every period by (tick + 3) / tick: about 300 ms.
    let slowest = u64::from(config.keepalive_ms + config.ack_delay_ms) + 2 * LATE_MS;
    let fewest = IDLE.as_millis() as u64 / slowest;
    let most = IDLE.as_millis() as u64 / u64::from(config.keepalive_ms) + 5;
    for (side, s) in [("initiator", a), ("acceptor", b)] {
        assert!(
            (fewest..=most).contains(&s.frames_sent),
            "{side}: {} frames in 60 s of idle, expected {fewest}..={most}",
            s.frames_sent
        );
        assert_eq!(s.timeouts, 0, "{side}: no silence timeout");
    }
}
