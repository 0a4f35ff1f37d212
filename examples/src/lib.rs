//! Host examples of vox-embedded. Binaries live in `src/bin`; the reusable
//! parts (so tests can run them) live here.

pub mod bare_tcp;
pub mod boards;
pub mod defmt_frames;
pub mod device_host;
pub mod fault_proxy;
pub mod framed_tcp;
pub mod qemu;
pub mod qemu_demo;
pub mod serial_line;
pub mod tls;
