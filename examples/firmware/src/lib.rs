//! The vox-embedded demo device on QEMU boards: board support (UART,
//! SysTick time driver, a sleeping executor) for the firmware binaries
//! (`device`, `device_bare`, `echo`, `selftest`). The device application itself is
//! `vox-demo-device`, shared with the real boards' firmware.
#![no_std]

#[cfg(all(feature = "board-lm3s6965", feature = "board-microbit"))]
compile_error!("choose one board feature: board-lm3s6965 or board-microbit");
#[cfg(not(any(feature = "board-lm3s6965", feature = "board-microbit")))]
compile_error!("choose a board feature: board-lm3s6965 (default) or board-microbit");

#[cfg(all(feature = "defmt", feature = "defmt-conduit"))]
compile_error!("choose one defmt transport: defmt (semihosting) or defmt-conduit (the conduit's log topic)");

pub mod board;
pub mod executor;
pub mod exit;
pub mod time_driver;

#[cfg(feature = "defmt")]
use defmt_semihosting as _;
