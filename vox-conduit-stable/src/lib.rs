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
//! // spawn(driver.run(link_source, clock)); then split the conduit and
//! // `tx.reserve().await?.send(msg)?` / `rx.recv().await?`.
//! # drop((conduit, driver));
//! # Ok::<(), vox_conduit_stable::ConfigError>(())
//! ```
//!
//! The wire format of one link payload (postcard): see [`wire`] and
//! `docs/PROTOCOL.md`.
//!
//! # Feature flags
//!
//! Every feature is off by default; `#![no_std]` and no allocator without
//! them.
//!
//! | feature | effect |
//! |---------|--------|
//! | `alloc` | [`StableStorage`] in an `Arc`; `StableAcceptor` (concurrent handshakes, sessions routed by resume key) |
//! | `std`   | host builds: std's `critical-section` and `std::io::Error` conversions; implies `alloc` |
//! | `send`  | `MaybeSend`/`MaybeSync` mean `Send`/`Sync` (multi-threaded executors such as tokio) |
//! | `defmt` | `defmt::Format` on errors; session state changes (attached, reattached, link lost, ended) logged with defmt |
//!
//! # Threat model
//!
//! A resume key (16 random bytes, new at every handshake) **names** a
//! session. It protects against confusion, not against attackers:
//!
//! - a new link reaches the right session, and a stale or foreign key is
//!   refused (`Reject(SessionUnknown)`), so a peer that restarted learns
//!   its session is gone instead of resuming someone else's;
//! - keys cannot be guessed (a CSPRNG: 128 bits, or 96 beside the 4-byte
//!   session tag of a `StableAcceptor`'s keys), so a blind peer cannot
//!   take over a session.
//!
//! It does **not** protect against an on-path attacker: anyone who can
//! read the link learns the key and can present it from a new connection,
//! taking the session over; anyone who can write the link can inject
//! frames (the CRC-32 catches noise, not forgery). Nothing is encrypted.
//! Over a network you do not trust, run the link over TLS: the framing
//! works over any byte stream, and `tests/src/tls.rs` runs a stable
//! conduit over tokio-rustls with a certificate the device trusts,
//! reconnects included (`tests/tests/stable_tls.rs`: 3,000 messages each
//! way across 4 cut connections, and a relay with another certificate
//! refused). A serial line or USB cable between a host and its device is
//! usually trusted as it is.
#![cfg_attr(docsrs, feature(doc_cfg))]
// r[impl host.threat-model]
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

#[macro_use]
mod state_log;
#[cfg(feature = "alloc")]
mod acceptor_config;
pub mod acceptor_core;
mod config;
mod driver;
#[cfg(feature = "std")]
mod early_permit;
mod error;
#[cfg(feature = "std")]
mod late_release;
mod primed_link;
mod reserve;
pub mod session;
#[cfg(feature = "alloc")]
mod stable_acceptor;
mod stable_conduit;
mod stable_stats;
mod stable_storage;
pub mod wire;
mod writer_queue;

#[cfg(feature = "alloc")]
pub use acceptor_config::AcceptorConfig;
pub use config::{ConfigError, StableConfig};
pub use driver::{Acceptor, Initiator, Role, StableDriver};
pub use error::{RecvError, SendError, SessionError};
pub use primed_link::{PrimedLink, PrimedRx};
#[cfg(feature = "alloc")]
pub use stable_acceptor::{
    AcceptedLink, AcceptedSession, AcceptorParts, AcceptorRunner, AcceptorStats, SessionLinks, StableAcceptor,
};
pub use stable_conduit::{StableConduit, StablePermit, StableRx, StableStatsHandle, StableTx};
pub use stable_stats::StableStats;
pub use stable_storage::{StableStorage, StableStore};
