//! `EmbassyClock`: the [`Clock`] of embassy-time, the firmware's time
//! driver, converting its ticks to milliseconds without a 64-bit division.

#[cfg(feature = "embassy-time")]
use crate::{Clock, Instant, MaybeSend};
#[cfg(feature = "embassy-time")]
use core::future::Future;

/// The [`Clock`] of embassy-time (feature `embassy-time`): the firmware's
/// time driver, so an idle device sleeps until the next deadline. Its
/// epoch is the device's boot. A deadline is rounded up to the next tick
/// (the timer never fires while `now()` still reads less than it); at a
/// 1 kHz tick nothing is converted at all.
///
/// ```no_run
/// use vox_types::{Clock, EmbassyClock};
/// # async fn demo() {
/// // The firmware links an embassy time driver; then:
/// let clock = EmbassyClock;
/// clock.sleep(core::time::Duration::from_millis(20)).await;
/// let _uptime_ms = clock.now().as_millis();
/// # }
/// ```
#[cfg(feature = "embassy-time")]
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbassyClock;

/// Milliseconds per tick as the fraction `MS_PER / TICKS_PER`, reduced.
#[cfg(feature = "embassy-time")]
const GCD: u64 = gcd(embassy_time::TICK_HZ, 1_000);
#[cfg(feature = "embassy-time")]
const MS_PER: u64 = 1_000 / GCD;
#[cfg(feature = "embassy-time")]
const TICKS_PER: u64 = embassy_time::TICK_HZ / GCD;

#[cfg(feature = "embassy-time")]
const fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    #[inline]
    fn now(&self) -> Instant {
        let ticks = embassy_time::Instant::now().as_ticks();
        // At 1 kHz a tick is a millisecond; otherwise one shared
        // conversion rather than a copy at every caller.
        Instant::from_millis(if MS_PER == 1 && TICKS_PER == 1 { ticks } else { ticks_to_millis(ticks) })
    }

    #[inline]
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + MaybeSend {
        let at = at.as_millis();
        let deadline =
            if MS_PER == 1 && TICKS_PER == 1 { embassy_time::Instant::from_ticks(at) } else { millis_to_deadline(at) };
        embassy_time::Timer::at(deadline)
    }
}

/// The first tick at or after `millis`; past what the tick counter holds
/// (`Instant::MAX` among them), embassy's `Instant::MAX`, which never
/// comes.
#[cfg(feature = "embassy-time")]
#[inline(never)]
fn millis_to_deadline(millis: u64) -> embassy_time::Instant {
    match millis.checked_mul(TICKS_PER) {
        Some(scaled) => {
            let (ticks, rest) = div_rem(scaled, MS_PER);
            embassy_time::Instant::from_ticks(ticks.saturating_add(u64::from(rest != 0)))
        }
        None => embassy_time::Instant::MAX,
    }
}

/// Whole milliseconds in `ticks`.
#[cfg(feature = "embassy-time")]
#[inline(never)]
fn ticks_to_millis(ticks: u64) -> u64 {
    div_rem(ticks.saturating_mul(MS_PER), TICKS_PER).0
}

/// `(x / d, x % d)` for a divisor below 2^16, in 16-bit steps of 32-bit
/// divisions; a shift for a power of two. Written by hand because the
/// general 64-bit division (compiler-builtins' `u64_div_rem`) costs a
/// Cortex-M firmware about 900 B of flash, and tick rates such as 1 MHz
/// (RP2040) divide by 1,000 on every reading.
#[cfg(any(feature = "embassy-time", test))]
#[inline]
const fn div_rem(x: u64, d: u64) -> (u64, u64) {
    if d.is_power_of_two() {
        return (x >> d.trailing_zeros(), x & (d - 1));
    }
    // Every tick rate embassy-time supports reduces to a divisor below
    // 2^16; anything else falls back to the general division.
    if d >= 1 << 16 {
        return (x / d, x % d);
    }
    let d = d as u32;
    let (mut q, mut r) = (0u64, 0u32);
    let mut shift = 64;
    while shift > 0 {
        shift -= 16;
        // r < d < 2^16, so the next 16 bits still fit in 32.
        let chunk = (r << 16) | ((x >> shift) as u32 & 0xFFFF);
        q = (q << 16) | (chunk / d) as u64;
        r = chunk % d;
    }
    (q, r as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_division_matches_the_general_one() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let edges = [0, 1, 999, 1_000, 1_001, 65_535, 65_536, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        for d in [1u64, 3, 125, 1_000, 4_096, 32_768, 65_535, 65_536, 1_000_000] {
            for &e in &edges {
                assert_eq!(div_rem(e, d), (e / d, e % d), "{e} / {d}");
            }
            for _ in 0..2_000 {
                // xorshift: spread over all 64 bits.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                assert_eq!(div_rem(x, d), (x / d, x % d), "{x} / {d}");
            }
        }
    }

    #[cfg(feature = "embassy-time")]
    #[test]
    // embassy-time's std driver runs a thread that never ends.
    #[cfg_attr(miri, ignore)]
    fn the_embassy_clock_tells_embassy_time() {
        use core::time::Duration;
        let clock = EmbassyClock;
        let start = clock.now();
        futures::executor::block_on(clock.sleep(Duration::from_millis(20)));
        let slept = clock.now().millis_since(start);
        assert!(slept >= 20, "slept {slept} ms");
        let ours = clock.now().as_millis();
        let theirs = embassy_time::Instant::now().as_millis();
        assert!(theirs >= ours && theirs - ours < 1_000);
        // A deadline past the tick counter's range never comes (no
        // overflow, no early wake).
        let never = clock.sleep_until(Instant::MAX);
        let mut never = core::pin::pin!(never);
        let polled = never.as_mut().poll(&mut core::task::Context::from_waker(core::task::Waker::noop()));
        assert!(polled.is_pending());
    }
}
