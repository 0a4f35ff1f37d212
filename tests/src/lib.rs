//! Conformance kits and test helpers shared by vox-embedded's integration
//! tests: each kit checks one contract of the requirements (`r[...]` ids)
//! against any implementation of a link or a conduit.

pub mod bare_harness;
pub mod conduit_kit;
pub mod fault_proxy;
pub mod framed_harness;
pub mod gated_dialer;
pub mod link_kit;
pub mod sim_runtime;
pub mod stable_harness;
pub mod stream_faults;
pub mod tcp_serial_port;
pub mod tls;
