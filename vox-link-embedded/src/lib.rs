//! Links for vox-embedded: [`MemoryLink`], an in-memory link pair with
//! deterministic fault injection.
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod memory_link;
#[cfg(feature = "alloc")]
mod memory_link_source;
mod queue_link;
mod slot_queue;
mod storage_ref;

pub use memory_link::{FaultPlan, MemoryLink, MemoryLinkPair, MemoryLinkRx, MemoryLinkTx};
#[cfg(feature = "alloc")]
pub use memory_link_source::{MemoryDialer, MemoryListener, memory_link_source};
pub use queue_link::{QueueLink, QueuePermit, QueueRx, QueueSlot, QueueTx};
