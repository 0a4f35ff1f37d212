//! `SimClock`: a simulated [`Clock`] for deterministic tests. Time stands
//! still until the test moves it, usually straight to the next deadline
//! anyone waits for, so a minute of protocol time runs in microseconds and
//! every run of a seed is the same.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use vox_types::{Clock, Instant, MaybeSend};

struct Sleeper {
    at: Instant,
    id: u64,
    waker: Waker,
}

struct State {
    now: Instant,
    /// Futures waiting, in no order.
    sleepers: Vec<Sleeper>,
    next_id: u64,
}

/// A clock that moves only when told: [`advance_to_next`](Self::advance_to_next)
/// jumps to the earliest deadline a [`sleep_until`](Clock::sleep_until)
/// future waits for and wakes it (ties in the order they started waiting).
/// Clones share one time line.
///
/// A test runs its futures until none can make progress, then advances
/// the clock, and repeats:
///
/// ```
/// use core::time::Duration;
/// use vox_link_embedded::sim::SimClock;
/// use vox_types::{Clock, Instant};
///
/// let clock = SimClock::new();
/// let mut sleep = Box::pin(clock.sleep(Duration::from_secs(30)));
/// let waker = core::task::Waker::noop();
/// let mut cx = core::task::Context::from_waker(&waker);
/// assert!(sleep.as_mut().poll(&mut cx).is_pending());
/// // Nothing else to do: jump straight to the deadline, no real waiting.
/// assert_eq!(clock.advance_to_next(), Some(Instant::from_millis(30_000)));
/// assert!(sleep.as_mut().poll(&mut cx).is_ready());
/// assert_eq!(clock.advance_to_next(), None, "nobody waits any more");
/// # use core::future::Future;
/// ```
#[derive(Clone)]
pub struct SimClock {
    state: Arc<Mutex<CriticalSectionRawMutex, RefCell<State>>>,
}

impl SimClock {
    /// A clock at its epoch ([`Instant::ZERO`]).
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(RefCell::new(State { now: Instant::ZERO, sleepers: Vec::new(), next_id: 0 }))),
        }
    }

    /// The earliest deadline anyone waits for.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state.lock(|s| s.borrow().sleepers.iter().map(|w| w.at).min())
    }

    /// Futures waiting on this clock now.
    pub fn sleepers(&self) -> usize {
        self.state.lock(|s| s.borrow().sleepers.len())
    }

    /// Moves time to the earliest deadline anyone waits for (never
    /// backwards) and wakes every sleeper due then; returns the new time,
    /// or `None` (time unchanged) when nobody waits.
    pub fn advance_to_next(&self) -> Option<Instant> {
        let next = self.next_deadline()?;
        let to = next.max(self.now());
        self.set(to);
        Some(to)
    }

    /// Moves time forward by `d`, waking every sleeper due by then.
    pub fn advance(&self, d: Duration) {
        self.set(self.now() + d);
    }

    /// Moves time to `to` (never backwards) and wakes the sleepers due.
    fn set(&self, to: Instant) {
        let mut due: Vec<(Instant, u64, Waker)> = Vec::new();
        self.state.lock(|s| {
            let mut s = s.borrow_mut();
            s.now = s.now.max(to);
            let now = s.now;
            s.sleepers.retain_mut(|w| {
                if w.at <= now {
                    due.push((w.at, w.id, w.waker.clone()));
                    false
                } else {
                    true
                }
            });
        });
        // Deterministic order: by deadline, then by when they started waiting.
        due.sort_by_key(|&(at, id, _)| (at, id));
        for (_, _, waker) in due {
            waker.wake();
        }
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for SimClock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimClock").field("now", &self.now()).field("sleepers", &self.sleepers()).finish()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.state.lock(|s| s.borrow().now)
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + MaybeSend {
        SimSleep { clock: self.clone(), at, id: None }
    }
}

/// The future of [`SimClock`]'s `sleep_until`.
struct SimSleep {
    clock: SimClock,
    at: Instant,
    /// Its entry among the sleepers, once it waits.
    id: Option<u64>,
}

impl Future for SimSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let (at, id) = (this.at, this.id);
        let registered = this.clock.state.lock(|s| {
            let mut s = s.borrow_mut();
            if s.now >= at {
                s.sleepers.retain(|w| Some(w.id) != id);
                return None;
            }
            match id.and_then(|id| s.sleepers.iter_mut().find(|w| w.id == id)) {
                Some(w) => {
                    w.waker.clone_from(cx.waker());
                    id
                }
                None => {
                    let id = s.next_id;
                    s.next_id += 1;
                    s.sleepers.push(Sleeper { at, id, waker: cx.waker().clone() });
                    Some(id)
                }
            }
        });
        match registered {
            None => {
                this.id = None;
                Poll::Ready(())
            }
            Some(id) => {
                this.id = Some(id);
                Poll::Pending
            }
        }
    }
}

impl Drop for SimSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.clock.state.lock(|s| s.borrow_mut().sleepers.retain(|w| w.id != id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::pin::pin;

    fn poll(f: Pin<&mut impl Future<Output = ()>>) -> bool {
        f.poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    // r[verify time.clock]
    #[test]
    fn sleepers_wake_in_deadline_order_and_time_jumps_without_waiting() {
        let clock = SimClock::new();
        let mut late = pin!(clock.sleep_until(Instant::from_millis(20)));
        let mut early = pin!(clock.sleep(Duration::from_millis(5)));
        let mut past = pin!(clock.sleep_until(Instant::ZERO));
        assert!(poll(past.as_mut()), "a deadline already reached completes at once");
        assert!(!poll(late.as_mut()) && !poll(early.as_mut()));
        assert!(!poll(late.as_mut()), "polling again keeps one entry");
        assert_eq!(clock.sleepers(), 2);
        assert_eq!(clock.advance_to_next(), Some(Instant::from_millis(5)));
        assert!(poll(early.as_mut()) && !poll(late.as_mut()));
        clock.advance(Duration::from_millis(100));
        assert_eq!(clock.now(), Instant::from_millis(105));
        assert!(poll(late.as_mut()));
        assert_eq!(clock.sleepers(), 0);
    }

    /// Counts its wakes.
    struct Counter(std::sync::atomic::AtomicU32);
    impl std::task::Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn the_latest_waker_is_woken_and_ties_wake_in_the_order_they_waited() {
        let clock = SimClock::new();
        let (first, second) = (Arc::new(Counter(0.into())), Arc::new(Counter(0.into())));
        let order = Arc::new(std::sync::Mutex::new(std::vec::Vec::new()));
        let mut a = pin!(clock.sleep_until(Instant::from_millis(7)));
        let mut b = pin!(clock.sleep_until(Instant::from_millis(7)));
        let poll_with = |f: Pin<&mut _>, w: &Arc<Counter>| {
            let waker = Waker::from(w.clone());
            Future::poll(f, &mut Context::from_waker(&waker)).is_ready()
        };
        assert!(!poll_with(a.as_mut(), &first));
        assert!(!poll_with(b.as_mut(), &first));
        // `a` is polled again with another waker: only that one is woken.
        assert!(!poll_with(a.as_mut(), &second));
        clock.advance_to_next();
        assert_eq!(first.0.load(core::sync::atomic::Ordering::Relaxed), 1, "b's waker");
        assert_eq!(second.0.load(core::sync::atomic::Ordering::Relaxed), 1, "a's newest waker, not its first");
        // Ties: woken in the order they started waiting.
        let log = |name: &'static str| {
            let order = order.clone();
            Waker::from(Arc::new(Logger(name, order)))
        };
        struct Logger(&'static str, Arc<std::sync::Mutex<std::vec::Vec<&'static str>>>);
        impl std::task::Wake for Logger {
            fn wake(self: Arc<Self>) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        let mut c = pin!(clock.sleep_until(Instant::from_millis(9)));
        let mut d = pin!(clock.sleep_until(Instant::from_millis(9)));
        let mut e = pin!(clock.sleep_until(Instant::from_millis(8)));
        for (f, name) in [(c.as_mut(), "c"), (d.as_mut(), "d")] {
            assert!(Future::poll(f, &mut Context::from_waker(&log(name))).is_pending());
        }
        assert!(Future::poll(e.as_mut(), &mut Context::from_waker(&log("e"))).is_pending());
        clock.advance(Duration::from_millis(10));
        assert_eq!(*order.lock().unwrap(), ["e", "c", "d"], "by deadline, then by when they waited");
    }

    #[test]
    fn a_dropped_sleeper_stops_waiting() {
        let clock = SimClock::new();
        {
            let mut s = pin!(clock.sleep(Duration::from_secs(1)));
            assert!(!poll(s.as_mut()));
            assert_eq!(clock.sleepers(), 1);
        }
        assert_eq!(clock.sleepers(), 0);
        assert_eq!(clock.advance_to_next(), None);
        assert_eq!(clock.now(), Instant::ZERO);
    }
}
