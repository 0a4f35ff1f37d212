//! The demo device as it was before `vox-rpc`: the same link, conduit and
//! memory, with the request matching and dispatch written by hand on the
//! `DemoMsg` message family. Kept only as the baseline of the benchmarks
//! (`firmware_size` prints what `vox-rpc` adds over it); the host side of
//! this protocol lives in the benchmarks too.
#![no_std]
#![no_main]

use core::future::poll_fn;
use core::pin::pin;
use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use static_cell::StaticCell;
use vox_conduit_stable::{SessionError, StableConduit};
use vox_demo_device::{DeviceMemory, DeviceStorage, EmbassyClock, StaticMemory, TELEMETRY_PERIOD};
use vox_demo_protocol::{DemoFamily, DemoMsg, UART_CONFIG, answer};
use vox_firmware::board::{self, UartRx, UartTx};
use vox_firmware::executor::WfiExecutor;
use vox_types::{Clock, Conduit, ConduitTx, ConduitTxPermit};

type HandConduit = StableConduit<DemoFamily, DeviceStorage>;

/// The whole device in one task (one task's header, not two): the
/// serial port beside the sessions.
#[embassy_executor::task]
async fn device(rx: UartRx, tx: UartTx) {
    let port = vox_demo_device::serial_port(StaticMemory, EmbassyClock, rx, tx);
    let _ = select(port, sessions()).await;
}

async fn sessions() -> ! {
    let memory = StaticMemory;
    loop {
        let Ok((conduit, driver)) = HandConduit::initiator(memory.conduit(), UART_CONFIG) else {
            // The configuration cannot work with this storage.
            break;
        };
        // The driver and the application side by side until the driver
        // ends: then the session is over and nothing the application
        // still does reaches the wire (its sends fail), so it is dropped
        // rather than awaited (a `join` would wait for it, and keep room
        // for its output).
        let mut driving = pin!(driver.run(memory.links().receiver(), EmbassyClock));
        let mut serving = pin!(serve(conduit));
        let mut served = false;
        let driven = poll_fn(move |cx| {
            if !served {
                served = serving.as_mut().poll(cx).is_ready();
            }
            driving.as_mut().poll(cx)
        })
        .await;
        if let Err(SessionError::Refused(_) | SessionError::Config(_)) = driven {
            // Refused by the host: a new session would end the same way.
            break;
        }
    }
    // Stopped (one wait for both reasons).
    core::future::pending().await
}

/// Answers requests and streams telemetry until the session ends. The
/// conduit is split before the future is made: the future keeps the
/// halves only. One loop waits for a request or the next sample's
/// deadline, whichever comes first, and sends what it has from one place
/// (one reservation, one send: a smaller future than a task each).
fn serve(conduit: HandConduit) -> impl Future<Output = ()> {
    let (tx, mut rx) = conduit.split();
    async move {
        let clock = EmbassyClock;
        let mut outputs = 0u32;
        let mut next = clock.now().add_millis(TELEMETRY_PERIOD.as_millis() as u64);
        let mut seq = 0u32;
        loop {
            // Deadlines on the clock: a late sample does not delay the
            // next. The sample's deadline first, so requests cannot starve
            // the telemetry.
            let msg = match select(clock.sleep_until(next), poll_fn(|cx| rx.poll_recv(cx))).await {
                Either::First(()) => None,
                Either::Second(Ok(Some(msg))) => Some(msg),
                Either::Second(Ok(None) | Err(_)) => return,
            };
            let out = match &msg {
                Some(msg) => match answer(msg.get::<DemoFamily>(), &mut outputs) {
                    Some(reply) => reply,
                    None => continue,
                },
                None => {
                    next = next.add_millis(TELEMETRY_PERIOD.as_millis() as u64);
                    let millivolts = 3300 - (seq % 64) as u16;
                    let sample = DemoMsg::Telemetry { seq, millivolts, label: "vbat" };
                    seq = seq.wrapping_add(1);
                    sample
                }
            };
            let Ok(permit) = tx.reserve().await else { return };
            if permit.send(out).is_err() {
                return;
            }
        }
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    static EXECUTOR: StaticCell<WfiExecutor> = StaticCell::new();
    let (rx, tx) = board::init();
    EXECUTOR.init(WfiExecutor::new()).run(|spawner: Spawner| {
        spawner.spawn(device(rx, tx).unwrap_or_else(|_| vox_firmware::exit::exit(false)));
    })
}
