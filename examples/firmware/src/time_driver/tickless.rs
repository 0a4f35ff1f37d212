//! The lm3s6965's tickless `embassy-time` driver.
//!
//! - **Clock:** SysTick counts the core clock down from 2^24 - 1 and is
//!   never reprogrammed; its interrupt only counts wraps (one per 5.4 s at
//!   the board's 3.125 MHz). The time is the wraps plus the cycles of the
//!   current period. The interrupt comes when the counter *reaches* 0, one
//!   count before it reloads (QEMU holds the 0 for a count too, and reads
//!   0 while a late wrap is unprocessed), so a reading of 0 is always the
//!   period's last count: the interrupt waits for the reload before it
//!   counts the wrap, and a reader adds a pending wrap only once the
//!   counter shows the next period. Rewriting the reload register while the
//!   counter runs races its wrap (a tickless SysTick driver tried here let
//!   the clock jump ahead under load), so the alarm lives elsewhere:
//! - **Alarm:** general-purpose timer 0 as a 32-bit one-shot, set to the
//!   next timer's deadline; its interrupt wakes the timers that are due
//!   and sets the next alarm. With nothing due the timer is off.
//!
//! An idle device wakes for its own deadlines, its UART and 0.19 wraps a
//! second, never on a tick. If the emulator stalls for more than a whole
//! period (5.4 s), two wraps merge into one pending interrupt and the
//! clock lags a period for good: still monotonic (never counted as a step
//! back), only late.

use core::cell::{Cell, RefCell};
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::Waker;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{NVIC, SCB, SYST};
use cortex_m_rt::exception;
use critical_section::{CriticalSection, Mutex};
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;
use lm3s6965::{Interrupt, interrupt};

use crate::board::CORE_HZ;

/// SysTick's reload value: the longest period, 2^24 cycles.
const RELOAD: u32 = 0x00FF_FFFF;
/// Core clock cycles per `embassy-time` tick.
const CYCLES_PER_TICK: u32 = (CORE_HZ as u64 / TICK_HZ) as u32;
const _: () = assert!((CORE_HZ as u64).is_multiple_of(TICK_HZ), "whole cycles per tick, or the clock runs fast");
/// A SysTick period (2^24 cycles) in whole ticks...
const PERIOD_TICKS: u64 = (RELOAD as u64 + 1) / CYCLES_PER_TICK as u64;
/// ...and the cycles left over. Time is kept as ticks and leftover cycles
/// so that reading it takes a 32-bit division, not a 64-bit one (a
/// library call worth about 900 B of flash on a Cortex-M).
const PERIOD_REST: u32 = ((RELOAD as u64 + 1) % CYCLES_PER_TICK as u64) as u32;

/// A point in time: whole ticks and the cycles into the next one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Time {
    ticks: u64,
    /// Always below [`CYCLES_PER_TICK`].
    cycles: u32,
}

impl Time {
    /// `cycles` later (any `u32` count).
    fn plus(self, cycles: u32) -> Self {
        // `self.cycles < CYCLES_PER_TICK`: no overflow for counts below
        // 2^32 - CYCLES_PER_TICK, and SysTick counts fit 24 bits.
        let sum = self.cycles + cycles;
        Self { ticks: self.ticks + u64::from(sum / CYCLES_PER_TICK), cycles: sum % CYCLES_PER_TICK }
    }

    /// One SysTick period later.
    fn next_period(self) -> Self {
        Self { ticks: self.ticks + PERIOD_TICKS, ..self }.plus(PERIOD_REST)
    }
}

/// General-purpose timer 0.
const TIMER0: usize = 0x4003_0000;
/// Configuration: 0 = one 32-bit timer.
const CFG: usize = 0x00;
/// Timer A mode: 1 = one-shot.
const TAMR: usize = 0x04;
/// Control: bit 0 enables timer A.
const CTL: usize = 0x0C;
/// Interrupt mask: bit 0, timer A time-out.
const IMR: usize = 0x18;
/// Interrupt clear: bit 0, timer A time-out.
const ICR: usize = 0x24;
/// Timer A interval load.
const TAILR: usize = 0x28;
/// System control: run-mode clock gating 1 (bit 16: timer 0).
const RCGC1: usize = 0x400F_E104;

fn write_reg(addr: usize, value: u32) {
    // SAFETY: `addr` is one of timer 0's registers above or RCGC1, always
    // mapped on this machine; this driver alone owns timer 0, and writing
    // them has no effect on memory.
    unsafe { ptr::write_volatile(addr as *mut u32, value) }
}

fn read_reg(addr: usize) -> u32 {
    // SAFETY: as in `write_reg`; reads have no side effect.
    unsafe { ptr::read_volatile(addr as *const u32) }
}

struct TicklessDriver {
    /// When the current SysTick period began.
    epoch: Mutex<Cell<Time>>,
    /// SysTick periods completed since [`start`].
    wraps: Mutex<Cell<u32>>,
    /// The counter has shown a count other than 0: until then (enabled, it
    /// reads 0 until its first count loads the reload value, which under
    /// QEMU waits for the emulator's main loop) a 0 is the start of period
    /// 0, where every later 0 ends a period.
    counting: Mutex<Cell<bool>>,
    /// The last time handed out, to count steps back (there should be
    /// none; see [`clock_steps_back`]).
    last: Mutex<Cell<Time>>,
    /// The tick the alarm was last set for.
    alarm_at: Mutex<Cell<u64>>,
    /// Timers waiting for their deadline.
    queue: Mutex<RefCell<Queue>>,
}

impl TicklessDriver {
    /// The time since [`start`].
    fn time(&self, cs: CriticalSection<'_>) -> Time {
        let mut epoch = self.epoch.borrow(cs).get();
        let mut current = SYST::get_current();
        // Interrupts are masked: a wrap since the interrupt last ran shows
        // as SysTick pending. Read again after seeing it, so the count
        // belongs to the period after that wrap, if it began.
        let pending = SCB::is_pendst_pending();
        if pending {
            current = SYST::get_current();
        }
        if pending && current != 0 {
            epoch = epoch.next_period();
        }
        let counting = self.counting.borrow(cs);
        if current != 0 {
            counting.set(true);
        } else if !counting.get() {
            return epoch;
        }
        let time = epoch.plus(RELOAD - current.min(RELOAD));
        let last = self.last.borrow(cs);
        if time < last.get() {
            STEPS_BACK.store(STEPS_BACK.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
        last.set(time);
        time
    }

    /// Sets the alarm for tick `at`; `false` if `at` has passed already
    /// (the caller wakes what is due and asks again).
    fn set_alarm(&self, cs: CriticalSection<'_>, at: u64) -> bool {
        write_reg(TIMER0 + CTL, 0);
        write_reg(TIMER0 + ICR, 1);
        if at == u64::MAX {
            return true;
        }
        let now = self.time(cs);
        if at <= now.ticks {
            return false;
        }
        // A deadline beyond 2^32 cycles (23 minutes) fires early and is
        // set again from the interrupt.
        let ahead = (at - now.ticks).saturating_mul(u64::from(CYCLES_PER_TICK)) - u64::from(now.cycles);
        write_reg(TIMER0 + TAILR, u32::try_from(ahead).unwrap_or(u32::MAX));
        write_reg(TIMER0 + CTL, 1);
        self.alarm_at.borrow(cs).set(at);
        true
    }

    /// Wakes the timers that are due and sets the alarm for the next one.
    fn wake_due(&self, cs: CriticalSection<'_>) -> u64 {
        let mut queue = self.queue.borrow_ref_mut(cs);
        loop {
            let now = self.time(cs).ticks;
            if self.set_alarm(cs, queue.next_expiration(now)) {
                return now;
            }
        }
    }
}

impl Driver for TicklessDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.time(cs).ticks)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            if self.queue.borrow_ref_mut(cs).schedule_wake(at, waker) {
                self.wake_due(cs);
            }
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: TicklessDriver = TicklessDriver {
    epoch: Mutex::new(Cell::new(Time { ticks: 0, cycles: 0 })),
    wraps: Mutex::new(Cell::new(0)),
    counting: Mutex::new(Cell::new(false)),
    last: Mutex::new(Cell::new(Time { ticks: 0, cycles: 0 })),
    alarm_at: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Starts the clock (SysTick on the core clock of `core_hz` Hz, which must
/// be [`CORE_HZ`]) and the alarm timer.
pub fn start(mut syst: SYST, core_hz: u32) {
    debug_assert_eq!(core_hz, CORE_HZ);
    write_reg(RCGC1, read_reg(RCGC1) | 1 << 16);
    write_reg(TIMER0 + CTL, 0);
    write_reg(TIMER0 + CFG, 0);
    write_reg(TIMER0 + TAMR, 1);
    write_reg(TIMER0 + IMR, 1);
    // SAFETY: unmasking timer 0's interrupt, whose handler is below; no
    // critical section relies on it being masked.
    unsafe { NVIC::unmask(Interrupt::TIMER_0A) };
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Alarm interrupts since boot.
static ALARMS: AtomicU32 = AtomicU32::new(0);
/// Alarm interrupts that came before the tick they were set for (the alarm
/// timer ran ahead of the clock, or a deadline beyond its range).
static EARLY_ALARMS: AtomicU32 = AtomicU32::new(0);

/// Alarm interrupts since boot, and how many of them came early
/// (both wrapping): where an idle device's wake-ups come from.
pub fn alarms() -> (u32, u32) {
    (ALARMS.load(Ordering::Relaxed), EARLY_ALARMS.load(Ordering::Relaxed))
}

/// SysTick wraps since boot (one per 2^24 cycles; wrapping).
pub fn wraps() -> u32 {
    critical_section::with(|cs| DRIVER.wraps.borrow(cs).get())
}

/// Milliseconds until SysTick's next wrap (for a test that reads the
/// clock across one).
pub fn until_next_wrap_ms() -> u64 {
    u64::from(SYST::get_current() / CYCLES_PER_TICK)
}

/// Times the clock read less than it had before (a bug if ever nonzero).
static STEPS_BACK: AtomicU32 = AtomicU32::new(0);

/// How many times the clock read less than it had before: 0 unless the
/// wrap accounting is wrong (a firmware reports it; a test checks it).
pub fn clock_steps_back() -> u32 {
    STEPS_BACK.load(Ordering::Relaxed)
}

#[exception]
fn SysTick() {
    // The counter reached 0 and reloads on its next count: one core cycle
    // on silicon, one timer tick (320 ns) in QEMU. Wait for it, so that a
    // reading of 0 is always a period's last count (bounded: a counter
    // that never reloads is a broken clock either way). Inside the critical
    // section, so that no interrupt of higher priority reads the clock
    // between the reload and the epoch's move.
    critical_section::with(|cs| {
        let mut spins = 0u32;
        while SYST::get_current() == 0 && spins < 10_000 {
            spins += 1;
        }
        let (epoch, wraps) = (DRIVER.epoch.borrow(cs), DRIVER.wraps.borrow(cs));
        epoch.set(epoch.get().next_period());
        wraps.set(wraps.get().wrapping_add(1));
    });
}

#[interrupt]
fn TIMER_0A() {
    let (now, early) = critical_section::with(|cs| {
        let early = DRIVER.time(cs).ticks < DRIVER.alarm_at.borrow(cs).get();
        (DRIVER.wake_due(cs), early)
    });
    // Only this handler writes the counts (load and store: no atomic add
    // on every core this driver could be built for).
    ALARMS.store(ALARMS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    if early {
        EARLY_ALARMS.store(EARLY_ALARMS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
    super::call_hook(now);
}
