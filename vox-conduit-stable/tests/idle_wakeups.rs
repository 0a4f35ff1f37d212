//! An idle session wakes only when something is due: its own keepalive
//! and its peer's, no fixed tick; and its keepalives keep their period on
//! the simulated clock (no drift).

#![allow(clippy::unwrap_used, clippy::panic)]

mod idle;

use idle::idle_session;
use vox_conduit_stable::StableConfig;
use vox_demo_protocol::UART_CONFIG;

/// Wake-ups a second an idle side may take: one per own keepalive, one
/// per peer keepalive (both sides alike here), and half a wake-up of
/// slack; a low-power session less than one every 4 s.
fn bound(config: StableConfig) -> f64 {
    let per_keepalives = 2.0 * 1000.0 / f64::from(config.keepalive_ms);
    if config == StableConfig::LOW_POWER { 0.25 } else { per_keepalives + 0.5 }
}

// r[verify core.deadline]
#[test]
fn an_idle_session_wakes_once_per_keepalive_each_way_and_keeps_time() {
    for (name, config, seconds) in [("uart", UART_CONFIG, 60), ("low power", StableConfig::LOW_POWER, 600)] {
        let r = idle_session(config, 2_000, seconds);
        println!("{name}: {r:?}, {:.2} wake-ups/s (bound {:.2})", r.wakeups_per_second(), bound(config));
        assert!(r.wakeups_per_second() <= bound(config), "{name}: {r:?}");
        // Keepalives every keepalive_ms on the simulated clock, exactly:
        // a timer that drifted (a late tick carried forward) sends fewer.
        let expected = seconds * 1000 / u64::from(config.keepalive_ms);
        for side in [r.initiator, r.acceptor] {
            assert!(
                side.frames.abs_diff(expected) <= 1,
                "{name}: {} keepalives in {seconds} s, {expected} expected: {r:?}",
                side.frames
            );
        }
    }
}
