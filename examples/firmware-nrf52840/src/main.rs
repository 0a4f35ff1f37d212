//! The demo device on an nRF52840-DK over UARTE0 (P0.06 = TX, P0.08 = RX:
//! the on-board J-Link's virtual serial port, 115,200 baud) through
//! embassy-nrf's buffered UARTE. Run `demo --port /dev/ttyACM0` on the
//! host. The application is `vox-demo-device`, the same as on every board.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_nrf::buffered_uarte::{self, BufferedUarte, BufferedUarteRx, BufferedUarteTx};
use embassy_nrf::{bind_interrupts, peripherals, uarte};
use static_cell::StaticCell;
use vox_demo_device::{EmbassyClock, StaticMemory};

#[cfg(all(feature = "defmt", feature = "defmt-conduit"))]
compile_error!("choose one defmt transport: defmt (RTT, a probe) or defmt-conduit (the conduit's log topic)");
#[cfg(not(feature = "defmt"))]
use panic_halt as _;
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

bind_interrupts!(struct Irqs {
    UARTE0 => buffered_uarte::InterruptHandler<peripherals::UARTE0>;
});

// r[impl board.second]
#[embassy_executor::task]
async fn serial_port(rx: BufferedUarteRx<'static>, tx: BufferedUarteTx<'static>) {
    match vox_demo_device::serial_port(StaticMemory, EmbassyClock, rx, tx).await {}
}

#[embassy_executor::task]
async fn sessions() {
    vox_demo_device::sessions(StaticMemory, EmbassyClock).await
}

/// Stops the firmware: a task could not be spawned (a bug in this file).
fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_nrf::init(Default::default());
    // The UARTE's buffers, filled and drained by DMA and its interrupt: a
    // frame's worth each way.
    static RX_BUF: StaticCell<[u8; 256]> = StaticCell::new();
    static TX_BUF: StaticCell<[u8; 256]> = StaticCell::new();
    // 115,200 baud, no parity.
    let config = uarte::Config::default();
    let uart = BufferedUarte::new(
        p.UARTE0,
        p.TIMER0,
        p.PPI_CH0,
        p.PPI_CH1,
        p.PPI_GROUP0,
        p.P0_08,
        p.P0_06,
        Irqs,
        config,
        RX_BUF.init([0; 256]),
        TX_BUF.init([0; 256]),
    );
    let (rx, tx) = uart.split();
    spawner.spawn(serial_port(rx, tx).unwrap_or_else(|_| halt()));
    spawner.spawn(sessions().unwrap_or_else(|_| halt()));
}
