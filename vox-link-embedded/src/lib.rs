//! Links for vox-embedded.
//!
//! - [`framed`]: [`FramedLink`], COBS + CRC-32 frames over any
//!   `embedded-io-async` byte stream (UART, USB CDC-ACM, TCP), its runner,
//!   statistics and the sans-I/O frame codec.
//! - [`memory`]: [`MemoryLink`], an in-memory link pair between two tasks.
//! - [`LinkChannel`]: a link source the application feeds (a new link
//!   on the same serial port after each link death).
//! - [`sim`]: stand-ins for tests and self-tests: byte pipes, a noisy
//!   serial line, memory-link faults and link sources.
//! - [`usb`]: a USB CDC-ACM byte stream that never holds a frame back in
//!   the host (with `embassy-usb`: on embassy-usb's CDC-ACM class).
//! - `host` (feature `tokio`): TCP and serial-port link sources and a
//!   timer, for host programs.
//!
//! Every feature is off by default; `#![no_std]` and no allocator without
//! them.
//!
//! | feature | effect |
//! |---------|--------|
//! | `alloc` | `Arc`-backed link storage (`new_shared` on [`MemoryLinkPair`] and [`FramedLinkStorage`]), `SharedLinkChannel`; [`sim`]'s memory link sources and `SimClock` |
//! | `std`   | host builds: std's `critical-section` and `std::io::Error` conversions; implies `alloc` and `fast-codec` |
//! | `send`  | `MaybeSend`/`MaybeSync` mean `Send`/`Sync` (multi-threaded executors such as tokio) |
//! | `defmt` | `defmt::Format` on errors and [`FramedStats`](framed::FramedStats); [`FramedPort`] logs how each link ended |
//! | `small-crc` | the frame CRC without its 1 KiB table (small flash) |
//! | `fast-codec` | host speed for the frame codec: `crc32fast` and `memchr`, runner buffers of one payload slot (`MTU` bytes, at least 2) each way instead of 32 bytes; implied by `std` |
//! | `tokio` | module `host`: TCP dialer and listener link sources, framed links on tokio byte streams, `TokioClock`; implies `std` and `send` |
//! | `embassy-usb` | `usb::cdc_acm_stream`: a reader and a packet writer on embassy-usb's CDC-ACM class |
//! | `serial` | `host::SerialPortSource`: a serial-port link source on tokio-serial; implies `tokio` |
#![cfg_attr(docsrs, feature(doc_cfg))]
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod framed;
#[cfg(feature = "tokio")]
pub mod host;
mod link_channel;
pub mod memory;
mod queue;
#[cfg(feature = "serial")]
mod serial_port_source;
pub mod sim;
pub mod usb;

pub use framed::{FramedLink, FramedLinkStorage, FramedPort, FramedRunner};
#[cfg(feature = "alloc")]
pub use link_channel::SharedLinkChannel;
pub use link_channel::{LinkChannel, LinkChannelReceiver};
pub use memory::{MemoryLink, MemoryLinkPair};
