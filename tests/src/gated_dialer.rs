//! `GatedDialer`: a memory link source's dialer that makes no link before
//! a time the test sets (a cable out for a while), on the simulated clock.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use vox_link_embedded::MemoryLink;
use vox_link_embedded::sim::{MemoryDialer, SimClock};
use vox_types::{Clock, Instant, LinkError, LinkSource};

/// The one dialer of a memory link source, shared by a test (to cut
/// links) and every boot of a device.
pub type SharedDialer = Arc<Mutex<MemoryDialer<M, 4, 256>>>;

/// Dials through `inner`, but not before `open_at` (ms).
pub struct GatedDialer {
    /// The dialer.
    pub inner: SharedDialer,
    /// The simulated clock.
    pub clock: SimClock,
    /// No link before this time (ms).
    pub open_at: Arc<AtomicU64>,
}

impl LinkSource for GatedDialer {
    type Link = MemoryLink<M, 4, 256>;
    async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
        self.clock.sleep_until(Instant::from_millis(self.open_at.load(Ordering::SeqCst))).await;
        Ok(self.inner.lock().unwrap_or_else(|e| e.into_inner()).connect())
    }
}
