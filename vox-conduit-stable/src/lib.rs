//! [`StableConduit`]: typed messages delivered exactly once and in order
//! across any number of link failures, as long as the session lives.
//!
//! A [`StableDriver`] (a future the application runs, like the framed
//! link's runner) takes fresh links from a [`LinkSource`](vox_types::LinkSource),
//! runs the prologue (mode stable) and a hello each way (resume key, next
//! expected sequence number), then moves data frames: sequence numbers per
//! direction, piggybacked acks, ack-only frames for one-way traffic,
//! keepalives and a silence timeout from the application's timer. Unacked
//! messages wait in a replay buffer bounded in bytes and frames; a full
//! buffer makes `reserve` wait. On a new attachment the missed frames are
//! resent in order before anything new.
//!
//! The wire format of one link payload (postcard): see [`wire`].
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

#[macro_use]
mod state_log;
mod config;
mod driver;
mod link_channel;
mod primed_link;
mod replay_ring;
#[cfg(feature = "alloc")]
mod stable_acceptor;
mod stable_conduit;
mod stable_error;
mod stable_stats;
mod state;
pub mod wire;

pub use config::StableConfig;
pub use driver::StableDriver;
#[cfg(feature = "alloc")]
pub use link_channel::SharedLinkChannel;
pub use link_channel::{LinkChannel, LinkChannelReceiver};
pub use primed_link::{PrimedLink, PrimedRx};
#[cfg(feature = "alloc")]
pub use stable_acceptor::{AcceptedLink, AcceptedSession, SessionLinks, StableAcceptor};
pub use stable_conduit::{StableConduit, StablePermit, StableRx, StableStatsHandle, StableStorage, StableTx};
pub use stable_error::StableError;
pub use stable_stats::StableStats;
