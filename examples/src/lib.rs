//! Host examples of vox-embedded. Binaries live in `src/bin`; the reusable
//! parts (so tests can run them) live here.

pub mod bare_tcp;
pub mod framed_tcp;
pub mod serial_line;
pub mod tcp_link_source;
pub mod tokio_delay;
