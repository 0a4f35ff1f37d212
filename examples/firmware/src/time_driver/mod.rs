//! The `embassy-time` driver of each board, and the timer hook they share.
//!
//! - lm3s6965 ([`tickless`]): tickless. SysTick runs free as the clock (one
//!   interrupt per 2^24 cycles, 5.4 s at the board's 3.125 MHz, to count
//!   wraps) and general-purpose
//!   timer 0 is a one-shot alarm at the next timer's deadline: an idle
//!   device wakes only when something is due.
//! - microbit ([`systick_tick`]): SysTick interrupts at 1 kHz (QEMU's nRF51
//!   has no RTC; its TIMER would do, not yet written).
//!
//! Both use `embassy-time-queue-utils`' integrated timer queue: it links
//! waiting timers through embassy-executor's tasks, so it has no fixed
//! capacity.

use core::cell::Cell;
use critical_section::Mutex;

#[cfg(feature = "board-microbit")]
pub mod systick_tick;
#[cfg(feature = "board-microbit")]
pub use systick_tick::start;

#[cfg(feature = "board-lm3s6965")]
pub mod tickless;
#[cfg(feature = "board-lm3s6965")]
pub use tickless::start;

/// A function the timer interrupt calls with the time in milliseconds (a
/// firmware's hook: the demo device logs from it, to show that its log
/// works from interrupt context).
static TIMER_HOOK: Mutex<Cell<Option<TimerHook>>> = Mutex::new(Cell::new(None));

/// What the timer interrupt calls: the time in milliseconds.
pub type TimerHook = fn(u64);

/// Makes the timer interrupt call `hook` (keep it short: it runs in the
/// interrupt).
pub fn set_timer_hook(hook: TimerHook) {
    critical_section::with(|cs| TIMER_HOOK.borrow(cs).set(Some(hook)));
}

/// Calls the hook, if any, with the time `now` (from a timer interrupt).
fn call_hook(now: u64) {
    if let Some(hook) = critical_section::with(|cs| TIMER_HOOK.borrow(cs).get()) {
        hook(now);
    }
}
