//! Core traits of vox-embedded: framed-byte [`Link`]s, typed [`Conduit`]s,
//! [`SelfRef`] received values and the link [`Prologue`].
//!
//! `#![no_std]`, no allocator needed. The same traits serve single-core
//! embassy firmware (`!Send` futures) and multi-threaded hosts (enable the
//! `send` feature to make [`MaybeSend`] mean `Send`).
//!
//! | feature | effect |
//! |---------|--------|
//! | `alloc` | boxed and shared (`Arc`) [`Backing`]s |
//! | `std`   | `std::io::Error` conversions; implies `alloc` |
//! | `send`  | [`MaybeSend`]/[`MaybeSync`] mean `Send`/`Sync`; a [`Backing`] is `Send` (lent only by `Sync` storage) |
//! | `defmt` | `defmt::Format` on errors and state types |
//! | `facet` | [`FacetFamily::shape`] for host tooling |
//! | `embassy-time` | [`EmbassyClock`]: the [`Clock`] of embassy-time (firmware) |
// r[impl types.no-std]
// r[impl types.features]
// r[impl port.targets]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod backing;
mod clock;
mod conduit;
#[cfg(any(feature = "embassy-time", test))]
mod embassy_clock;
mod error_kind;
mod fingerprint;
mod link;
mod link_error;
mod link_source;
mod maybe_send;
mod msg_family;
#[cfg(feature = "alloc")]
mod pending_handshakes;
mod prologue;
mod prologue_error;
mod prologue_exchange;
mod self_ref;
mod session_role;
mod storage_ref;

pub use backing::{Backing, BackingVTable};
pub use clock::{Clock, Instant};
pub use conduit::{Conduit, ConduitAcceptor, ConduitRx, ConduitTx, ConduitTxPermit, RecvResult};
#[cfg(feature = "embassy-time")]
pub use embassy_clock::EmbassyClock;
pub use error_kind::{ConduitError, ErrorKind};
pub use fingerprint::SchemaFingerprint;
pub use link::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};
pub use link_error::LinkError;
pub use link_source::LinkSource;
pub use maybe_send::{MaybeSend, MaybeSync};
#[cfg(feature = "facet")]
pub use msg_family::FacetFamily;
pub use msg_family::{MsgFamily, decode_message};
#[cfg(feature = "alloc")]
pub use pending_handshakes::{AcceptEvent, Admission, HandshakeProgress, PendingHandshakes};
pub use prologue::{ConduitMode, PROLOGUE_MAGIC, PROLOGUE_MAX_LEN, PROTOCOL_VERSION, Prologue};
pub use prologue_error::PrologueError;
pub use prologue_exchange::{HandshakeError, exchange_prologue, send_prologue};
pub use self_ref::{SameAs, SelfRef};
pub use session_role::SessionRole;
pub use storage_ref::{LendsSlots, StorageRef};

/// Re-exports used by [`msg_family!`]; not part of the stable API.
#[doc(hidden)]
pub mod __private {
    pub use postcard_schema;
}
