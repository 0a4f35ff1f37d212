//! `ClockSync`: the peer's clock offset from NTP-style samples, the one
//! with the smallest error bound kept, and that bound (ε).

use vox_types::Instant;

/// How fast two clocks may drift apart, in parts per million: 100 ppm
/// (two crystals of ±50 ppm). ε grows by this much of a sample's age.
pub const DRIFT_PPM: u64 = 100;

/// The peer's clock as this side knows it.
///
/// A sample is four times: `t0` (our clock, query sent), `t1` (peer's,
/// query arrived), `t2` (peer's, answer sent), `t3` (ours, answer
/// arrived). The offset (peer − ours) is `((t1 − t0) + (t2 − t3)) / 2`,
/// off by at most half the round trip `(t3 − t0) − (t2 − t1)`, plus a
/// few milliseconds for the clocks' resolution, plus the drift since. Samples
/// delayed by a link cut have a long round trip and lose to better ones.
#[derive(Debug, Clone, Copy)]
pub struct ClockSync {
    /// The kept sample; [`Sample::NONE`] before the first (8 bytes less
    /// than an `Option`).
    best: Sample,
    samples: u32,
}

impl Default for ClockSync {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Peer clock minus ours, ms.
    offset: i64,
    /// Error bound when taken, ms.
    error: u64,
    /// Our clock when taken.
    at: Instant,
}

impl Sample {
    /// No sample: an error bound of 0, which no sample has (each is at
    /// least 3 ms). All zero bytes, so a table in a `static` stays in
    /// `.bss`, not in flash.
    const NONE: Self = Self { offset: 0, error: 0, at: Instant::ZERO };

    fn get(self) -> Option<Self> {
        (self.error != 0).then_some(self)
    }
}

impl ClockSync {
    /// No sample yet.
    pub const fn new() -> Self {
        Self { best: Sample::NONE, samples: 0 }
    }

    /// Takes a sample; keeps it if its error bound now is smaller than the
    /// kept one's.
    ///
    /// (Integer arithmetic in `i64` and `u32` only: a 128-bit or 64-bit
    /// division would pull about 1 KiB of library code into a Cortex-M
    /// firmware.)
    pub fn sample(&mut self, t0: u64, t1: u64, t2: u64, t3: Instant) -> bool {
        let t3 = t3.as_millis();
        // Counted whether kept or dropped (docs/PROTOCOL.md): a peer whose
        // every reply is impossible still ends the burst of queries at
        // connect, instead of being asked again at once, for ever.
        self.samples = self.samples.saturating_add(1);
        // Impossible (a wrong or hostile peer): dropped, not clamped.
        if t3 < t0 || t2 < t1 || t2 - t1 > t3 - t0 {
            return false;
        }
        let rtt = (t3 - t0) - (t2 - t1);
        // Times are ms since boot: far below 2^62, so the differences fit.
        let there = (t1 as i64).wrapping_sub(t0 as i64);
        let back = (t2 as i64).wrapping_sub(t3 as i64);
        let offset = there.wrapping_add(back) >> 1;
        // Half the round trip, rounded up, and 3 ms of resolution: each of
        // the four whole-ms readings may be up to 1 ms early (the two
        // differences: up to ±1 ms on the offset, and the round trip up to
        // 2 ms longer than measured: +1 ms on its half), and the server's
        // own whole-ms clock lets it start up to 1 ms after the deadline.
        let error = (rtt >> 1) + (rtt & 1) + 3;
        let now = Instant::from_millis(t3);
        let better = self.epsilon(now).is_none_or(|kept| error <= kept);
        if better {
            self.best = Sample { offset, error, at: now };
        }
        better
    }

    /// Samples taken so far (kept or not).
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// The bound on the offset's error at `now` (ms): the kept sample's,
    /// grown by the drift since. `None` before the first sample.
    pub fn epsilon(&self, now: Instant) -> Option<u64> {
        // 100 ppm is 1 ms per 10 s; ages beyond 49 days are capped.
        const MS_PER_DRIFT_MS: u32 = (1_000_000 / DRIFT_PPM) as u32;
        self.best.get().map(|s| {
            let age = u32::try_from(now.millis_since(s.at)).unwrap_or(u32::MAX);
            s.error + u64::from(age.div_ceil(MS_PER_DRIFT_MS))
        })
    }

    /// `ours` (our clock) in the peer's clock, or `None` before the first
    /// sample.
    pub fn to_peer(&self, ours: Instant) -> Option<i64> {
        let ours = i64::try_from(ours.as_millis()).unwrap_or(i64::MAX);
        self.best.get().map(|s| ours.saturating_add(s.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_bound_from_a_symmetric_exchange() {
        let mut sync = ClockSync::new();
        assert_eq!(sync.epsilon(Instant::from_millis(0)), None);
        // Peer is 1000 ms ahead; 4 ms each way; 2 ms in the peer.
        assert!(sync.sample(100, 1104, 1106, Instant::from_millis(110)));
        assert_eq!(sync.to_peer(Instant::from_millis(200)), Some(1200));
        // rtt 8 → 4 + 3.
        assert_eq!(sync.epsilon(Instant::from_millis(110)), Some(7));
        // 30 s later the drift adds 3 ms.
        assert_eq!(sync.epsilon(Instant::from_millis(30_110)), Some(10));
        // A deadline far away stays far away.
        assert_eq!(sync.to_peer(Instant::MAX), Some(i64::MAX));
    }

    #[test]
    fn a_sample_delayed_by_a_cut_loses_to_a_fast_one() {
        let mut sync = ClockSync::new();
        assert!(sync.sample(100, 1104, 1104, Instant::from_millis(108)));
        // Answer held 1.2 s in a replay ring: its offset is off by ~600 ms.
        assert!(!sync.sample(200, 1204, 1204, Instant::from_millis(1408)));
        assert_eq!(sync.to_peer(Instant::from_millis(0)), Some(1000));
        // Asymmetric but fast: kept, and the true offset within its bound.
        assert!(sync.sample(2000, 3001, 3001, Instant::from_millis(2004)));
        let off = sync.to_peer(Instant::from_millis(0)).unwrap();
        assert!((off - 1000).unsigned_abs() <= sync.epsilon(Instant::from_millis(2004)).unwrap());
    }

    #[test]
    fn impossible_samples_are_ignored() {
        let mut sync = ClockSync::new();
        assert!(!sync.sample(100, 50, 40, Instant::from_millis(120)));
        assert!(!sync.sample(100, 50, 60, Instant::from_millis(90)));
        // The peer claims to have held the query longer than the round trip.
        assert!(!sync.sample(100, 50, 70, Instant::from_millis(110)));
        assert_eq!(sync.epsilon(Instant::from_millis(0)), None);
        // Dropped, and counted: the runner stops its burst at connect.
        assert_eq!(sync.samples(), 3);
    }
}
