//! The baseline firmware: the same board, executor and time driver as
//! `device`, without the conduit stack; echoes every UART byte. Its size is
//! the reference for the conduit stack's footprint, and its echo rate the
//! emulated line's limit.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embedded_io_async::{Read, Write};
use static_cell::StaticCell;
use vox_firmware::board::{self, UartRx, UartTx};
use vox_firmware::executor::WfiExecutor;

#[embassy_executor::task]
async fn echo(mut rx: UartRx, mut tx: UartTx) {
    let mut buf = [0u8; 64];
    loop {
        let Ok(n) = rx.read(&mut buf).await;
        let Ok(()) = tx.write_all(buf.get(..n).unwrap_or(&[])).await;
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    static EXECUTOR: StaticCell<WfiExecutor> = StaticCell::new();
    let (rx, tx) = board::init();
    EXECUTOR.init(WfiExecutor::new()).run(|spawner: Spawner| {
        spawner.spawn(echo(rx, tx).unwrap_or_else(|_| vox_firmware::exit::exit(false)));
    })
}
