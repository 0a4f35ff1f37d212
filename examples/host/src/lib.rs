//! The host half of the demo application, as `vox-demo-device` is its
//! device half: sessions with the device (in QEMU, on a board, or in this
//! process) that call its endpoints and check every answer and telemetry
//! sample, and the simulated serial line the README demo runs with both
//! ends in one process. The `demo` binary (`vox-examples`) and the tests
//! (`vox-tests`) both run it.

pub mod defmt_frames;
pub mod device_host;
pub mod qemu_demo;
pub mod serial_line;
