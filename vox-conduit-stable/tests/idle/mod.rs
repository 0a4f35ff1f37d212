//! An idle stable session on the simulated clock: an initiator and an
//! acceptor over an in-memory link, nothing to send, each driver polled
//! only when its waker is called; the clock jumps to the next deadline
//! whenever both are quiet. Counts each driver's polls (wake-ups) and its
//! frames over a span of simulated time. Shared by the `idle_wakeups`
//! test and the `idle` bench.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::sim::{SimClock, memory_link_source};
use vox_types::{Clock, Instant};

#[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema, Debug)]
pub struct Idle(pub u32);
vox_types::msg_family!(IdleFamily => Idle);

type Storage = StableStorage<CriticalSectionRawMutex, 1024, 8, 1024, 8>;

/// What one side did while idle.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side {
    /// Polls of its driver future.
    pub polls: u64,
    /// Frames it sent.
    pub frames: u64,
}

/// Both sides over `seconds` of simulated time, after the handshake.
#[derive(Debug, Clone, Copy)]
pub struct IdleReport {
    pub initiator: Side,
    pub acceptor: Side,
    pub seconds: u64,
}

impl IdleReport {
    /// The busier side's wake-ups per second.
    pub fn wakeups_per_second(&self) -> f64 {
        self.initiator.polls.max(self.acceptor.polls) as f64 / self.seconds as f64
    }
}

/// A waker that raises a flag: the future is polled again only if set.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

struct Task<'a> {
    future: Pin<Box<dyn Future<Output = ()> + 'a>>,
    flag: Arc<Flag>,
    waker: Waker,
    polls: u64,
}

impl<'a> Task<'a> {
    fn new(future: impl Future<Output = ()> + 'a) -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        Self { future: Box::pin(future), waker: Waker::from(flag.clone()), flag, polls: 0 }
    }

    /// Polls if woken; whether it was.
    fn poll_if_woken(&mut self) -> bool {
        if !self.flag.0.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.polls += 1;
        let _ = self.future.as_mut().poll(&mut Context::from_waker(&self.waker));
        true
    }
}

/// Runs an idle session with `config` on both sides: `warmup_ms` for the
/// handshake to settle, then counts over `seconds`.
pub fn idle_session(config: StableConfig, warmup_ms: u64, seconds: u64) -> IdleReport {
    let clock = SimClock::new();
    let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
    let (initiator, initiator_driver) =
        StableConduit::<IdleFamily, Storage>::initiator(Arc::new(Storage::new()), config).unwrap();
    let (acceptor, acceptor_driver) =
        StableConduit::<IdleFamily, Storage>::acceptor(Arc::new(Storage::new()), config).unwrap();
    let rng: rand_chacha::ChaCha8Rng = rand_chacha::rand_core::SeedableRng::seed_from_u64(1);
    let (c1, c2) = (clock.clone(), clock.clone());
    let mut tasks = [
        Task::new(async move {
            let ended = initiator_driver.run(dialer, c1).await;
            panic!("the initiator's driver ended: {ended:?}");
        }),
        Task::new(async move {
            let ended = acceptor_driver.run(listener, rng, c2).await;
            panic!("the acceptor's driver ended: {ended:?}");
        }),
    ];
    let start = Instant::from_millis(warmup_ms);
    let end = start.add_millis(seconds * 1000);
    let mut counted = [Side::default(); 2];
    let mut at_start = None;
    loop {
        while tasks.iter_mut().fold(false, |any, t| t.poll_if_woken() | any) {}
        if at_start.is_none() && clock.now() >= start {
            at_start =
                Some((tasks[0].polls, tasks[1].polls, initiator.stats().frames_sent, acceptor.stats().frames_sent));
        }
        // Stop before the first deadline past the span.
        match clock.next_deadline() {
            Some(next) if next < end => {
                clock.advance_to_next();
            }
            _ => break,
        }
    }
    let (p0, p1, f0, f1) = at_start.unwrap_or_default();
    counted[0] = Side { polls: tasks[0].polls - p0, frames: initiator.stats().frames_sent - f0 };
    counted[1] = Side { polls: tasks[1].polls - p1, frames: acceptor.stats().frames_sent - f1 };
    drop(tasks);
    IdleReport { initiator: counted[0], acceptor: counted[1], seconds }
}
