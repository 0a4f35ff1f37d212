//! The `embassy-time` driver: tickless SysTick. An idle device sleeps;
//! timers are deadlines, not ticks.
//!
//! SysTick is a 24-bit down counter on the core clock that interrupts
//! when it wraps. Rather than wrapping every millisecond, each of its
//! periods ends at the next timer's deadline (the first cycle of the tick
//! the timer is due in), or after the longest period (2^24 cycles: 1.3 s
//! on lm3s6965, 1.05 s on microbit) when no timer is due sooner. A device
//! wakes for its timers only, and when idle about once a second.
//!
//! Time is counted in cycles, not interrupts. The state holds the running
//! period's length and the tick and cycles past it at which the period
//! began; `now` adds the cycles elapsed in it (length − 1 − the counter).
//! A period that ended is counted whole by whoever first sees SysTick's
//! COUNTFLAG (reading it clears it), the interrupt or `now`, which then
//! reads the counter again: a wrap racing a read is counted once and never
//! missed, and the cycles below a millisecond carry over. Nothing drifts.
//!
//! The reload register holds the *next* period's length (SysTick loads it
//! when the running period ends), so it is set without touching the count:
//! to end at the next deadline or, when the running period ends on it, to
//! last the span that timer was set for; a periodic timer then runs
//! SysTick with no reprogramming at all. Only a deadline earlier than the
//! running period's end (or one set in its last moments) restarts the
//! counter (a new reload, the counter cleared): the cycles up to the last
//! read are counted, the few between it and the restart are not (under
//! QEMU also its 10 µs minimum timer period, once per restart). A timer
//! already due is woken at once.
//!
//! COUNTFLAG is one bit: each period must be counted before the next one
//! ends. Periods last at least `MIN_PERIOD` (1/16 ms) for that; interrupts
//! masked longer, or an emulator stalled longer (a loaded host), lose one.
//!
//! The timer queue is `embassy-time-queue-utils`' integrated one: it
//! links waiting timers through embassy-executor's tasks, so it has no
//! fixed capacity.

use crate::board::CORE_HZ;
use core::cell::UnsafeCell;
use core::task::Waker;
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::RegisterBlock;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

/// Core clock cycles per tick (per millisecond).
const CYCLES_PER_TICK: u32 = CORE_HZ / TICK_HZ as u32;
const _: () = assert!(CORE_HZ.is_multiple_of(TICK_HZ as u32), "whole cycles per tick: the driver counts exact time");
/// SysTick's longest period, in cycles (a 24-bit reload value + 1).
const MAX_PERIOD: u32 = 1 << 24;
/// The shortest period programmed: long enough that the interrupt counts
/// each period before the next one ends (a deadline nearer than this is
/// met this much late, within its millisecond).
const MIN_PERIOD: u32 = CYCLES_PER_TICK / 16;
/// Ticks ahead past which a deadline is beyond any period (and whose
/// cycles still fit a `u32`).
const FAR: u64 = (MAX_PERIOD / CYCLES_PER_TICK + 2) as u64;
/// SysTick CSR: the counter reached 0 since CSR was last read.
const COUNTFLAG: u32 = 1 << 16;

fn syst() -> &'static RegisterBlock {
    // SAFETY: SysTick's registers are always mapped, and `start` took the
    // only `SYST`: this module is their only user, and reads and writes
    // them in critical sections.
    unsafe { &*SYST::PTR }
}

struct State {
    /// The tick in which SysTick's running period began.
    ticks: u64,
    /// Cycles past the start of that tick at which the period began
    /// (less than [`CYCLES_PER_TICK`]).
    cycles: u32,
    /// The running period's length in cycles (SysTick's reload value + 1
    /// when it began; the reload register may hold the next one's).
    period: u32,
    /// A count other than 0 was read in the running period. Until then 0
    /// means its start, not its end: SysTick shows 0 until it loads the
    /// reload value (a cycle; QEMU takes longer after a restart).
    counting: bool,
    /// How far ahead the earliest timer was last set, in cycles: the
    /// guess for the period after its deadline (a periodic timer sets
    /// itself as far ahead again).
    span: u32,
    /// What the timer interrupt calls.
    hook: Option<TimerHook>,
    /// Timers waiting for their tick.
    queue: Queue,
}

impl State {
    /// Moves the period's start `cycles` later.
    fn advance(&mut self, cycles: u32) {
        let cycles = self.cycles + cycles;
        self.ticks += u64::from(cycles / CYCLES_PER_TICK);
        self.cycles = cycles % CYCLES_PER_TICK;
    }

    /// Counts a period that ended, and returns the cycles elapsed in the
    /// running one.
    fn elapsed(&mut self) -> u32 {
        let s = syst();
        let mut current = s.cvr.read();
        // Read after the counter (reading clears it): a period that ended
        // before or after that read is counted here, once, and the
        // counter read again, in the next period (of the reload's length).
        if s.csr.read() & COUNTFLAG != 0 {
            self.advance(self.period);
            self.period = s.rvr.read() + 1;
            self.counting = false;
            current = s.cvr.read();
        }
        if current != 0 {
            self.counting = true;
        } else if !self.counting {
            current = self.period - 1;
        }
        self.period - 1 - current
    }

    fn now(&mut self) -> u64 {
        let elapsed = self.elapsed();
        self.ticks + u64::from((self.cycles + elapsed) / CYCLES_PER_TICK)
    }

    /// Wakes the timers that are due and makes a SysTick period end at
    /// the next one's tick; returns the time. `set`: the deadline of a
    /// timer just set (0 if none).
    fn update(&mut self, set: u64) -> u64 {
        let now = self.now();
        let next = self.queue.next_expiration(now);
        // Read again, just before reprogramming: waking took cycles.
        let elapsed = self.elapsed();
        // In cycles past the start of `self.ticks`: now, where the running
        // period ends, and where one should end.
        let at = self.cycles + elapsed;
        let end = self.cycles + self.period;
        let deadline = next.saturating_sub(self.ticks).min(FAR) as u32 * CYCLES_PER_TICK;
        if set == next {
            self.span = deadline.saturating_sub(at - at % CYCLES_PER_TICK);
        }
        // Restart SysTick with a period ending at the deadline to cut the
        // running period short, or if it is so near its end that it could
        // reload while the register is written. Else set the next period
        // (loaded when this one ends): ending at the deadline or, if this
        // one ends on it, lasting the span; but not before SysTick has
        // loaded this one (QEMU would load the next one's instead).
        let restart = deadline < end || end - at <= MIN_PERIOD;
        let period = if restart {
            deadline.saturating_sub(at)
        } else if !self.counting {
            return now;
        } else if deadline > end {
            deadline - end
        } else {
            self.span
        }
        .clamp(MIN_PERIOD, MAX_PERIOD);
        let s = syst();
        // SAFETY: a reload below 2^24 is valid.
        unsafe { s.rvr.write(period - 1) };
        if restart {
            self.advance(elapsed);
            self.period = period;
            self.counting = false;
            // SAFETY: writing CVR clears the counter (and COUNTFLAG),
            // which then loads the reload: a new period.
            unsafe { s.cvr.write(0) };
        }
        now
    }
}

struct SysTickDriver {
    state: Mutex<UnsafeCell<State>>,
}

impl SysTickDriver {
    /// Runs `f` on the state, in a critical section.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        critical_section::with(|cs| {
            // SAFETY: the critical section keeps out every other user (one
            // core, interrupts masked), and no `f` calls `with` again.
            f(unsafe { &mut *self.state.borrow(cs).get() })
        })
    }
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        self.with(State::now)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        self.with(|state| {
            if state.queue.schedule_wake(at, waker) {
                // A new or earlier deadline (or one already due: woken now).
                state.update(at);
            }
        });
    }
}

// All zeros (no flash for its initial value): `start` sets the period.
embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    state: Mutex::new(UnsafeCell::new(State {
        ticks: 0,
        cycles: 0,
        period: 0,
        counting: false,
        span: 0,
        hook: None,
        queue: Queue::new(),
    })),
});

/// What the timer interrupt calls: the time in ticks (milliseconds).
pub type TimerHook = fn(u64);

/// Makes the timer interrupt call `hook` each time it runs: when a timer
/// is due, or at the latest after SysTick's longest period (keep it
/// short: it runs in the interrupt). A firmware's hook: the demo device
/// logs from it, to show that its log works from interrupt context.
pub fn set_timer_hook(hook: TimerHook) {
    DRIVER.with(|state| state.hook = Some(hook));
}

/// Starts the clock: SysTick on the core clock ([`CORE_HZ`]), its first
/// period the longest. Call it before any use of time.
pub fn start(syst: SYST) {
    DRIVER.with(|state| state.period = MAX_PERIOD);
    // SAFETY: a reload below 2^24 is valid; writing CVR clears the counter;
    // CSR: count the core clock, interrupt at 0, run.
    unsafe {
        syst.rvr.write(MAX_PERIOD - 1);
        syst.cvr.write(0);
        syst.csr.write(0b111);
    }
}

#[exception]
fn SysTick() {
    let (now, hook) = DRIVER.with(|state| (state.update(0), state.hook));
    if let Some(hook) = hook {
        hook(now);
    }
}
