//! Links for vox-embedded.
//!
//! - [`framed`]: [`FramedLink`], COBS + CRC-32 frames over any
//!   `embedded-io-async` byte stream (UART, USB CDC-ACM, TCP), its runner,
//!   statistics and the sans-I/O frame codec.
//! - [`memory`]: [`MemoryLink`], an in-memory link pair between two tasks.
//! - [`sim`]: stand-ins for tests and self-tests: byte pipes, a noisy
//!   serial line, memory-link faults and link sources.
//! - [`usb`]: a USB CDC-ACM byte stream that never holds a frame back in
//!   the host (with `embassy-usb`: on embassy-usb's CDC-ACM class).
//! - `host` (feature `tokio`): TCP and serial-port link sources and a
//!   timer, for host programs.
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod framed;
#[cfg(feature = "tokio")]
pub mod host;
pub mod memory;
mod queue;
#[cfg(feature = "serial")]
mod serial_port_source;
pub mod sim;
pub mod usb;

pub use framed::{FramedLink, FramedLinkStorage, FramedPort, FramedRunner};
pub use memory::{MemoryLink, MemoryLinkPair};
