//! Host examples of vox-embedded. Binaries live in `src/bin`; the parts
//! they share live here. Launching QEMU and building firmware, which the
//! demo's `--qemu` mode and the tests both need, is the unpublished
//! `vox-qemu-rig` crate (`tests/qemu-rig`).

pub mod bare_tcp;
pub mod defmt_frames;
pub mod device_host;
pub mod framed_tcp;
pub mod qemu_demo;
pub mod serial_line;
pub mod tls;
