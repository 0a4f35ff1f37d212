//! `TokioDelay`: the `embedded-hal-async` timer a stable conduit needs, on
//! tokio's clock.

use std::time::Duration;

/// `embedded_hal_async::delay::DelayNs` on tokio's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioDelay;

impl embedded_hal_async::delay::DelayNs for TokioDelay {
    async fn delay_ns(&mut self, ns: u32) {
        tokio::time::sleep(Duration::from_nanos(u64::from(ns))).await;
    }

    async fn delay_ms(&mut self, ms: u32) {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
    }
}
