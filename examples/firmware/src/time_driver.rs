//! The `embassy-time` driver: SysTick interrupts at 1 kHz count
//! milliseconds and wake the timers that are due. The timer queue is
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

/// A function the tick interrupt calls with the tick count (a firmware's
/// hook: the demo device logs from it, to show that its log works from
/// interrupt context).
static TICK_HOOK: Mutex<Cell<Option<TickHook>>> = Mutex::new(Cell::new(None));

/// What the tick interrupt calls: the tick count.
pub type TickHook = fn(u64);

/// Makes the tick interrupt call `hook` on every tick (keep it short: it
/// runs in the interrupt).
pub fn set_tick_hook(hook: TickHook) {
    critical_section::with(|cs| TICK_HOOK.borrow(cs).set(Some(hook)));
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
        (now, TICK_HOOK.borrow(cs).get())
    });
    if let Some(hook) = hook {
        hook(now);
    }
}
