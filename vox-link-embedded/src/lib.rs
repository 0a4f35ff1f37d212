//! Links for vox-embedded: [`FramedLink`], COBS + CRC-32 frames over any
//! `embedded-io-async` byte stream, and [`MemoryLink`], an in-memory link
//! pair with deterministic fault injection. With the `tokio` feature,
//! [`host`] has the TCP link sources and timer a host program needs.
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod byte_pipe;
// Safe code only, and heavy: not worth running under Miri.
#[cfg(all(test, not(miri)))]
mod frame_codec_tests;
mod frame_crc;
mod frame_decoder;
mod frame_encoder;
mod framed_link;
mod framed_stats;
#[cfg(feature = "tokio")]
pub mod host;
mod memory_link;
#[cfg(feature = "alloc")]
mod memory_link_source;
mod noisy_writer;
mod queue_link;
#[cfg(feature = "serial")]
mod serial_port_source;
mod slot_queue;

pub use byte_pipe::{BytePipe, PipeReader, PipeWriter};
pub use frame_decoder::{Decoded, FrameDecoder, FrameError, max_encoded_run};
pub use frame_encoder::encode_frame;
pub use framed_link::{FramedLink, FramedLinkStorage, FramedRunner, FramedStatsHandle};
pub use framed_stats::FramedStats;
pub use memory_link::{FaultPlan, MemoryLink, MemoryLinkPair, MemoryLinkRx, MemoryLinkTx};
#[cfg(feature = "alloc")]
pub use memory_link_source::{MemoryDialer, MemoryListener, memory_link_source};
pub use noisy_writer::{NoiseCounts, NoiseRates, NoisyWriter};
pub use queue_link::{QueueLink, QueuePermit, QueueRx, QueueSlot, QueueTx};
