//! A thread-mode embassy executor that sleeps with `WFI` between polls.
//!
//! embassy's own cortex-m executor sleeps with `WFE`, which QEMU runs as a
//! plain yield: an idle firmware would keep a host core at 100 %. `WFI`
//! halts the emulated CPU until an interrupt, so an idle QEMU uses no CPU.
//!
//! Each return from `WFI` is counted ([`wakeups`]): how often an idle
//! device wakes is the measure of how well it sleeps.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use embassy_executor::{Spawner, raw};

/// Set when a task was woken since the last poll.
static WOKEN: AtomicBool = AtomicBool::new(false);

/// Returns from `WFI` since boot.
static WAKEUPS: AtomicU32 = AtomicU32::new(0);

/// How many times the executor woke from `WFI` since boot (wrapping).
pub fn wakeups() -> u32 {
    WAKEUPS.load(Ordering::Relaxed)
}

// The executor calls this (from tasks or interrupts) when a task is woken.
#[unsafe(export_name = "__pender")]
fn __pender(_context: *mut ()) {
    WOKEN.store(true, Ordering::Release);
}

/// The executor; create it in a `static` cell and call [`WfiExecutor::run`].
pub struct WfiExecutor {
    inner: raw::Executor,
    not_send: PhantomData<*mut ()>,
}

impl Default for WfiExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl WfiExecutor {
    /// A new executor.
    pub fn new() -> Self {
        Self { inner: raw::Executor::new(core::ptr::null_mut()), not_send: PhantomData }
    }

    /// Spawns the first tasks with `init`, then polls woken tasks forever,
    /// sleeping in between.
    pub fn run(&'static mut self, init: impl FnOnce(Spawner)) -> ! {
        init(self.inner.spawner());
        loop {
            WOKEN.store(false, Ordering::Release);
            // SAFETY: `poll` is only called from this loop, in thread mode,
            // never reentrantly.
            unsafe { self.inner.poll() };
            // With interrupts masked, a wake-up between the check and `WFI`
            // leaves its interrupt pending, and a pending interrupt ends
            // `WFI` even while masked: no wake-up is slept through.
            cortex_m::interrupt::disable();
            if !WOKEN.load(Ordering::Acquire) {
                cortex_m::asm::wfi();
                // Only this loop writes the count: a load and a store do
                // (Cortex-M0 has no atomic add).
                WAKEUPS.store(WAKEUPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            }
            // SAFETY: re-enables the interrupts masked just above; no
            // critical section is open in thread mode here.
            unsafe { cortex_m::interrupt::enable() };
        }
    }
}
