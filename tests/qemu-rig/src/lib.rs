//! Launching QEMU and building firmware, for the demo's `--qemu` mode
//! (`vox-demo-host`) and the tests (`vox-tests`): [`qemu`] installs QEMU
//! when missing, builds the QEMU boards' firmware and runs it with its
//! UART on a TCP connection or a pseudo-terminal; [`boards`] builds the
//! real boards' firmware and measures its footprint. Not published.

pub mod boards;
pub mod qemu;
