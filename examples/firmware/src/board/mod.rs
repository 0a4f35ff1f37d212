//! Board support: [`init`] starts the millisecond tick and returns the
//! board's UART as async reader and writer halves.

#[cfg(feature = "board-lm3s6965")]
mod lm3s6965;
#[cfg(feature = "board-lm3s6965")]
pub use lm3s6965::{CORE_HZ, NAME, UartRx, UartTx, init_clock, init_uart};

#[cfg(feature = "board-microbit")]
mod microbit;
#[cfg(feature = "board-microbit")]
pub use microbit::{CORE_HZ, NAME, UartRx, UartTx, init_uart};

/// The microbit's clock is fixed.
#[cfg(feature = "board-microbit")]
pub fn init_clock() {}

/// Starts the `embassy-time` tick and the UART; call once at boot.
pub fn init() -> (UartRx, UartTx) {
    init_clock();
    match cortex_m::Peripherals::take() {
        Some(core) => crate::time_driver::start(core.SYST, CORE_HZ),
        // Taken already: a second `init`, a bug in the binary.
        None => crate::exit::exit(false),
    }
    init_uart()
}
