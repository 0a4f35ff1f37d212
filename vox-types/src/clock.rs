//! `Clock`: the one injected source of time. It tells the current
//! monotonic [`Instant`] and gives a future that completes at a given
//! instant, so timers are deadlines (never ticks) and a test can swap in a
//! simulated clock.

use crate::MaybeSend;
use core::future::Future;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on a [`Clock`]'s monotonic time line, in milliseconds since the
/// clock's own epoch (its boot, or its creation). Instants of different
/// clocks are not comparable.
///
/// Milliseconds are the unit of every timer in the protocol, and they cost
/// no division on a firmware whose time driver ticks at 1 kHz (a 64-bit
/// division pulls about 900 B of flash into a Cortex-M firmware).
///
/// ```
/// use core::time::Duration;
/// use vox_types::Instant;
///
/// let t = Instant::from_millis(1_500);
/// assert_eq!((t + Duration::from_millis(250)).as_millis(), 1_750);
/// assert_eq!(t - Instant::from_millis(500), Duration::from_secs(1));
/// assert_eq!(t.millis_since(Instant::from_millis(500)), 1_000);
/// // Earlier minus later saturates at zero.
/// assert_eq!(Instant::ZERO - t, Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The clock's epoch.
    pub const ZERO: Self = Self(0);
    /// The farthest instant: a deadline that never comes.
    pub const MAX: Self = Self(u64::MAX);

    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `millis` milliseconds later (saturating at [`Instant::MAX`]).
    pub const fn add_millis(self, millis: u64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    /// Milliseconds from `earlier` to `self`; zero if `earlier` is later.
    pub const fn millis_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `d` rounded up to whole milliseconds is added (a deadline is never
/// earlier than asked); saturates at [`Instant::MAX`].
impl Add<Duration> for Instant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        let part = u64::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        let millis = d.as_secs().saturating_mul(1_000).saturating_add(u64::from(d.subsec_millis()) + part);
        self.add_millis(millis)
    }
}

/// Saturates at zero.
impl Sub for Instant {
    type Output = Duration;
    fn sub(self, earlier: Self) -> Duration {
        Duration::from_millis(self.millis_since(earlier))
    }
}

/// The time every component takes instead of reading a global: the current
/// instant, and a future that completes at a given one.
///
/// Implementations: [`EmbassyClock`](crate::EmbassyClock) (feature `embassy-time`, firmware),
/// `vox_link_embedded::host::TokioClock` (feature `tokio`, hosts) and
/// `vox_link_embedded::sim::SimClock` (tests: time moves only when the
/// test advances it, to the next deadline, with no real sleeping).
///
/// A clock is cheap to clone (a unit struct, or a shared handle), so each
/// component keeps its own copy. Its resolution is a millisecond: `now()`
/// reads whole milliseconds, so a `sleep(d)` may end up to a millisecond
/// before `d` of real time has passed, never later than the executor
/// wakes it. [`Instant::MAX`] is a deadline that never comes.
///
/// Writing one for another executor or HAL takes two methods; a
/// `sleep_until` must not complete before `now()` has reached its
/// instant:
///
/// ```
/// use core::future::Future;
/// use core::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use vox_types::{Clock, Instant, MaybeSend};
///
/// /// A test clock: every sleep completes at once by moving time to its
/// /// deadline.
/// #[derive(Clone, Default)]
/// struct Jumping(Arc<AtomicU64>);
///
/// impl Clock for Jumping {
///     fn now(&self) -> Instant {
///         Instant::from_millis(self.0.load(Ordering::Relaxed))
///     }
///     fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + MaybeSend {
///         self.0.fetch_max(at.as_millis(), Ordering::Relaxed);
///         core::future::ready(())
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let clock = Jumping::default();
/// clock.sleep(core::time::Duration::from_secs(1)).await;
/// assert_eq!(clock.now(), Instant::from_millis(1_000));
/// # });
/// ```
// r[impl time.clock]
pub trait Clock {
    /// The current instant. Monotonic: never less than an earlier reading.
    fn now(&self) -> Instant;

    /// Completes once [`now`](Self::now) is at or past `at` (at once for
    /// an instant already past). Cancel-safe: dropping it just stops
    /// waiting.
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + MaybeSend;

    /// Completes `d` from now: `sleep_until(now() + d)`.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + MaybeSend {
        self.sleep_until(self.now() + d)
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + MaybeSend {
        (**self).sleep_until(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_add_and_subtract_without_overflow() {
        let t = Instant::from_millis(10);
        assert_eq!(t + Duration::from_millis(5), Instant::from_millis(15));
        assert_eq!(t + Duration::from_micros(2_999), Instant::from_millis(13), "rounded up");
        assert_eq!(t + Duration::from_micros(3_000), Instant::from_millis(13));
        assert_eq!(t + Duration::from_nanos(1), Instant::from_millis(11), "never earlier than asked");
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(t + Duration::MAX, Instant::MAX);
        assert_eq!(Instant::from_millis(15) - t, Duration::from_millis(5));
        assert_eq!(t - Instant::from_millis(15), Duration::ZERO);
        assert_eq!(t.add_millis(u64::MAX), Instant::MAX);
        assert_eq!(Instant::from_millis(15).millis_since(t), 5);
    }
}
