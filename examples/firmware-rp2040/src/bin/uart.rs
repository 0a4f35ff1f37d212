//! The demo device over UART0 (GP0 = TX, GP1 = RX, 115,200 baud) through
//! embassy-rp's interrupt-driven buffered UART. Connect a USB-serial
//! adapter and run `demo --port /dev/ttyUSB0` on the host.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_rp::bind_interrupts;
use embassy_rp::peripherals::UART0;
use embassy_rp::uart::{BufferedInterruptHandler, BufferedUart, BufferedUartRx, BufferedUartTx, Config};
use static_cell::StaticCell;
use vox_demo_device::{EmbassyClock, StaticMemory};
use vox_firmware_rp2040::{BAUD, halt, sessions};

bind_interrupts!(struct Irqs {
    UART0_IRQ => BufferedInterruptHandler<UART0>;
});

// r[impl board.uart]
#[embassy_executor::task]
async fn serial_port(rx: BufferedUartRx, tx: BufferedUartTx) {
    match vox_demo_device::serial_port(StaticMemory, EmbassyClock, rx, tx).await {}
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());
    // The UART's ring buffers, filled and drained by its interrupt: a
    // frame's worth each way.
    static TX_BUF: StaticCell<[u8; 256]> = StaticCell::new();
    static RX_BUF: StaticCell<[u8; 256]> = StaticCell::new();
    let mut config = Config::default();
    config.baudrate = BAUD;
    let uart = BufferedUart::new(p.UART0, p.PIN_0, p.PIN_1, Irqs, TX_BUF.init([0; 256]), RX_BUF.init([0; 256]), config);
    let (tx, rx) = uart.split();
    spawner.spawn(serial_port(rx, tx).unwrap_or_else(|_| halt()));
    spawner.spawn(sessions().unwrap_or_else(|_| halt()));
}
