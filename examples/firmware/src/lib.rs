//! The vox-embedded demo device: board support (UART, SysTick time driver,
//! a sleeping executor) and the device application, shared by the firmware
//! binaries (`device`, `echo`, `selftest`).
#![no_std]

#[cfg(all(feature = "board-lm3s6965", feature = "board-microbit"))]
compile_error!("choose one board feature: board-lm3s6965 or board-microbit");
#[cfg(not(any(feature = "board-lm3s6965", feature = "board-microbit")))]
compile_error!("choose a board feature: board-lm3s6965 (default) or board-microbit");

#[macro_use]
mod log;

pub mod board;
pub mod device;
pub mod executor;
pub mod exit;
pub mod time_driver;

#[cfg(feature = "defmt")]
use defmt_semihosting as _;
