//! The demo device over a `BareConduit`: the same framed link on the UART
//! (same settings, same storage), the same `vox-rpc` server (`SetOutput`,
//! `ReadSensor`, `Echo`), the same call to the host's clock and the same
//! telemetry and log topics as the `device` firmware, without the stable
//! conduit's sequence numbers, acks, replay or resume. Kept as the
//! baseline of the benchmarks (`qemu_calls` prints stable/bare calls per
//! second, `firmware_size` what reliability costs).
//!
//! A bare conduit dies with its link: a session lasts one link. When it
//! ends the device drops the link, the serial-port task attaches a fresh
//! one on the same UART, and the device handshakes again.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use static_cell::StaticCell;
use vox_conduit_bare::{BareConduit, ConnectError};
use vox_demo_device::{DeviceMemory, EmbassyClock, SERVE_ARENA, SERVE_ROOM, StaticMemory, UartLink};
use vox_demo_protocol::{Echo, ReadSensor, SetOutput};
use vox_firmware::board::{self, UartRx, UartTx};
use vox_firmware::executor::WfiExecutor;
use vox_rpc::{Client, RpcFamily, Server};
use vox_types::{LinkSource, SessionRole};

/// The device's conduit: rpc frames, postcard in the UART link's slots.
type DeviceBareConduit = BareConduit<UartLink, RpcFamily>;

/// The whole device in one task, as the `device` firmware: a framed link
/// kept on the UART (a fresh one after each link ends) beside the
/// sessions.
#[embassy_executor::task]
async fn device(rx: UartRx, tx: UartTx) {
    let port = vox_demo_device::serial_port(StaticMemory, EmbassyClock, rx, tx);
    let _ = select(port, sessions()).await;
}

/// Bare sessions one after another, each on a fresh link: prologue
/// exchange (this side the initiator, as the `device` firmware), then the
/// calls until the link dies.
async fn sessions() {
    let memory = StaticMemory;
    let clock = EmbassyClock;
    let mut outputs = 0u32;
    let (telemetry, log) = (memory.telemetry(), memory.log());
    let _ = log.try_publish(&"booted");
    let server = Server::<_, SERVE_ROOM, SERVE_ARENA>::with_room()
        .serve::<SetOutput, _>(|pin| vox_demo_protocol::set_output(&mut outputs, *pin))
        .serve::<ReadSensor, _>(|sensor| Ok(vox_demo_protocol::sensor_value(*sensor)))
        .serve::<Echo, _>(|bytes| Ok(bytes.into_inner()))
        .publish(&*telemetry)
        .publish(&*log);
    #[cfg(feature = "defmt-conduit")]
    let server = server.publish(vox_demo_device::DEFMT_LOG.publication());
    let mut server = core::pin::pin!(server);
    let calls = memory.calls();
    let client = Client::new(calls.clone(), clock);
    let mut links = memory.links().receiver();
    loop {
        // The channel never fails; the next link comes once the previous
        // one is dropped (the serial-port task attaches it then).
        let Ok(link) = links.next_link().await else { continue };
        let conduit = match DeviceBareConduit::connect(link, SessionRole::Initiator).await {
            Ok(conduit) => conduit,
            Err(ConnectError::Refused(e)) if e.is_refusal() => {
                // The host runs other firmware (schema, mode, version or
                // role): every handshake would end the same way.
                #[cfg(any(feature = "defmt", feature = "defmt-conduit"))]
                defmt::warn!("refused by the host: {}; not retrying", e);
                return core::future::pending().await;
            }
            Err(_e) => {
                // Garbage, or the link ended first: try on a fresh link.
                #[cfg(any(feature = "defmt", feature = "defmt-conduit"))]
                defmt::warn!("handshake failed: {}", _e);
                continue;
            }
        };
        let _ = log.try_publish(&"session started");
        let running = vox_rpc::run(conduit, &calls, server.as_mut(), clock);
        let served = match select(running, vox_demo_device::call_the_host(&client, &clock, &telemetry)).await {
            Either::First(served) => served,
            Either::Second(never) => match never {},
        };
        #[cfg(any(feature = "defmt", feature = "defmt-conduit"))]
        defmt::warn!("session ended: {}", served);
        if served.is_err_and(|e| e.is_final()) {
            // Another rpc envelope, a protocol violation, or frames the
            // link cannot carry: a new session would end the same way.
            return core::future::pending().await;
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
