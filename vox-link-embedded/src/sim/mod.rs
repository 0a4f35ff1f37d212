//! Stand-ins for the outside world, for tests, simulations and the
//! on-target self-test: an in-memory byte stream ([`BytePipe`]), a noisy
//! serial line ([`NoisyWriter`]) and cable pulls ([`LineCutter`]), faults for memory links ([`FaultPlan`]),
//! and (with `alloc`) a link source of fresh memory links
//! ([`memory_link_source`]) standing in for a reconnecting dialer and its
//! listener, and a simulated clock ([`SimClock`]) that moves only when the
//! test advances it.

mod byte_pipe;
mod fault_plan;
mod line_cutter;
#[cfg(feature = "alloc")]
mod memory_link_source;
mod noisy_writer;
#[cfg(feature = "alloc")]
mod sim_clock;

pub use byte_pipe::{BytePipe, PipeReader, PipeWriter};
pub use fault_plan::FaultPlan;
pub use line_cutter::LineCutter;
#[cfg(feature = "alloc")]
pub use memory_link_source::{MemoryDialer, MemoryListener, memory_link_source};
pub use noisy_writer::{NoiseCounts, NoiseRates, NoisyWriter};
#[cfg(feature = "alloc")]
pub use sim_clock::SimClock;
