//! The demo device: StableConduit over FramedLink on the UART, answering
//! host requests and streaming telemetry.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};
use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use static_cell::StaticCell;
use vox_demo_device::{DeviceMemory, EmbassyClock, StaticMemory};
use vox_firmware::board::{self, UartRx, UartTx};
use vox_firmware::executor::WfiExecutor;

/// The whole device in one task (one task's header, not two): the
/// serial port beside the sessions. What `vox_demo_device::run` does,
/// written out: without a future around the two (and the clock by value,
/// not by reference at each level), the task takes 48 bytes less RAM.
#[embassy_executor::task]
async fn device(rx: UartRx, tx: UartTx) {
    let port = vox_demo_device::serial_port(StaticMemory, EmbassyClock, rx, tx);
    match select(port, vox_demo_device::sessions(StaticMemory, EmbassyClock)).await {
        Either::First(never) => match never {},
        Either::Second(never) => never,
    }
}

/// The idle measurement: every 10 s, how many times the executor woke.
#[cfg(feature = "idle-report")]
#[embassy_executor::task]
async fn idle_report() {
    use embassy_time::{Duration, Instant, Timer};
    use vox_firmware::executor::wakeups;
    const PERIOD: Duration = Duration::from_secs(10);
    let mut next = Instant::now();
    let mut last = wakeups();
    loop {
        next += PERIOD;
        Timer::at(next).await;
        let now = wakeups();
        let woke = now.wrapping_sub(last);
        last = now;
        #[cfg(feature = "board-lm3s6965")]
        {
            use vox_firmware::time_driver::tickless::{alarms, clock_steps_back, wraps};
            let ((alarms, early), wraps) = (alarms(), wraps());
            cortex_m_semihosting::hprintln!(
                "wakeups: {} in {} ms (at {} ms; since boot: {} alarms, {} early; {} clock wraps, {} steps back)",
                woke,
                PERIOD.as_millis(),
                Instant::now().as_millis(),
                alarms,
                early,
                wraps,
                clock_steps_back()
            );
        }
        #[cfg(not(feature = "board-lm3s6965"))]
        cortex_m_semihosting::hprintln!("wakeups: {} in {} ms", woke, PERIOD.as_millis());
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    static EXECUTOR: StaticCell<WfiExecutor> = StaticCell::new();
    let (rx, tx) = board::init();
    // The idle measurement: telemetry off, only keepalives and calls.
    #[cfg(feature = "idle-report")]
    vox_demo_device::TELEMETRY_ON.store(false, Ordering::Relaxed);
    // One log line from an interrupt handler, a second after boot (at the
    // first timer interrupt from then): the log topic never waits and its
    // mutex is interrupt-safe. Only this interrupt touches the flag.
    static LOGGED: AtomicBool = AtomicBool::new(false);
    vox_firmware::time_driver::set_timer_hook(|now| {
        if now >= 1000 && !LOGGED.load(Ordering::Relaxed) {
            LOGGED.store(true, Ordering::Relaxed);
            let _ = StaticMemory.log().try_publish(&"logged from the timer interrupt");
            #[cfg(feature = "defmt-conduit")]
            defmt::info!("defmt from the timer interrupt, at {} ms", now);
        }
    });
    EXECUTOR.init(WfiExecutor::new()).run(|spawner: Spawner| {
        spawner.spawn(device(rx, tx).unwrap_or_else(|_| vox_firmware::exit::exit(false)));
        #[cfg(feature = "idle-report")]
        spawner.spawn(idle_report().unwrap_or_else(|_| vox_firmware::exit::exit(false)));
    })
}
