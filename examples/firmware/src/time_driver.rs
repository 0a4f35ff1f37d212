//! The `embassy-time` driver: SysTick interrupts at 1 kHz count
//! milliseconds and wake the timers that are due. (A tickless SysTick
//! driver, each period ending at the next deadline, idled at 17.7
//! wake-ups a second but let the clock jump ahead when QEMU was starved
//! of CPU: reprogramming the reload register races the wrap, and a wrap
//! counted with the new length adds time. Until that is solved, ticks.) The timer queue is
//! `embassy-time-queue-utils`' integrated one: it links waiting timers
//! through embassy-executor's tasks, so it has no fixed capacity.

use core::cell::{Cell, RefCell};
use core::task::Waker;
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

struct SysTickDriver {
    /// Ticks since [`start`].
    ticks: Mutex<Cell<u64>>,
    /// Timers waiting for a tick.
    queue: Mutex<RefCell<Queue>>,
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let now = self.ticks.borrow(cs).get();
            let mut queue = self.queue.borrow_ref_mut(cs);
            queue.schedule_wake(at, waker);
            if at <= now {
                // Already due: wake now rather than on the next tick.
                queue.next_expiration(now);
            }
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

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

/// Starts the tick: SysTick on the core clock of `core_hz` Hz.
pub fn start(mut syst: SYST, core_hz: u32) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(core_hz / TICK_HZ as u32 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    let (now, hook) = critical_section::with(|cs| {
        let ticks = DRIVER.ticks.borrow(cs);
        let now = ticks.get() + 1;
        ticks.set(now);
        DRIVER.queue.borrow_ref_mut(cs).next_expiration(now);
        (now, TIMER_HOOK.borrow(cs).get())
    });
    if let Some(hook) = hook {
        hook(now);
    }
}
