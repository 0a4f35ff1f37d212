//! Wake-ups per second of an idle stable session on the simulated clock,
//! with the demo's UART settings and with `StableConfig::LOW_POWER`
//! (goals: ≤ 10.5 and ≤ 0.25). Counts, not timings: the same every run.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs, dead_code)]

#[path = "../tests/idle/mod.rs"]
mod idle;

use vox_conduit_stable::StableConfig;
use vox_demo_protocol::UART_CONFIG;

fn main() {
    let uart = idle::idle_session(UART_CONFIG, 2_000, 60);
    println!("idle wakeups per second: {:.2} ({uart:?})", uart.wakeups_per_second());
    let low = idle::idle_session(StableConfig::LOW_POWER, 2_000, 600);
    println!("idle wakeups per second (low power): {:.3} ({low:?})", low.wakeups_per_second());
}
