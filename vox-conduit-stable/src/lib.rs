//! [`StableConduit`]: typed messages delivered exactly once and in order
//! across any number of link failures, as long as the session lives.
//!
//! The protocol is a sans-I/O state machine ([`session`]): handshake,
//! sequence numbers, acks, the replay ring, the receive ring, credit flow
//! control and timers, fed frames and time. A [`StableDriver`] (a future
//! the application runs, like the framed link's runner) is the plumbing
//! around it: it takes fresh links from a [`LinkSource`](vox_types::LinkSource),
//! moves frames between them and the core, and keeps the clock.
//!
//! ```
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
//! # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
//! # struct Ping(u32);
//! # vox_types::msg_family!(PingFamily => Ping);
//!
//! type Storage = StableStorage<CriticalSectionRawMutex, 1024, 16, 512, 8>;
//! static STORAGE: Storage = StableStorage::new();
//!
//! // A configuration that cannot work with this storage is refused here.
//! let (conduit, driver) = StableConduit::<PingFamily, Storage>::initiator(&STORAGE, StableConfig::DEFAULT)?;
//! // spawn(driver.run(link_source, delay)); then split the conduit and
//! // `tx.reserve().await?.send(msg)?` / `rx.recv().await?`.
//! # drop((conduit, driver));
//! # Ok::<(), vox_conduit_stable::ConfigError>(())
//! ```
//!
//! The wire format of one link payload (postcard): see [`wire`] and
//! `docs/PROTOCOL.md`.
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
mod error;
mod link_channel;
mod primed_link;
pub mod session;
#[cfg(feature = "alloc")]
mod stable_acceptor;
mod stable_conduit;
mod stable_stats;
mod stable_storage;
pub mod wire;

pub use config::{ConfigError, StableConfig};
pub use driver::{Acceptor, Initiator, Role, StableDriver};
pub use error::{RecvError, SendError, SessionError};
#[cfg(feature = "alloc")]
pub use link_channel::SharedLinkChannel;
pub use link_channel::{LinkChannel, LinkChannelReceiver};
pub use primed_link::{PrimedLink, PrimedRx};
#[cfg(feature = "alloc")]
pub use stable_acceptor::{AcceptedLink, AcceptedSession, AcceptorParts, AcceptorRunner, SessionLinks, StableAcceptor};
pub use stable_conduit::{StableConduit, StablePermit, StableRx, StableStatsHandle, StableTx};
pub use stable_stats::StableStats;
pub use stable_storage::{StableStorage, StableStore};
