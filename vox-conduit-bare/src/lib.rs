//! [`BareConduit`]: typed messages over any [`Link`](vox_types::Link),
//! postcard-encoded in place, decoded zero-copy; dies with its link.
//!
//! ```text
//! connect:  prologue each way (magic, version, mode = bare, role, schema fingerprint)
//! send:     reserve → serialized_size → alloc(exactly that) → postcard::to_slice in the slot → commit
//! receive:  link payload → SelfRef<Msg<'static>> whose &str / &[u8] point into the payload
//! ```
//!
//! Every feature is off by default; `#![no_std]` and no allocator without
//! them.
//!
//! | feature | effect |
//! |---------|--------|
//! | `alloc` | `BareAcceptor`: concurrent handshakes under a deadline, a cap on connections held; `Arc` backings in vox-types |
//! | `std`   | host builds: std's `critical-section` and `std::io::Error` conversions; implies `alloc` |
//! | `send`  | `MaybeSend`/`MaybeSync` mean `Send`/`Sync` (multi-threaded executors such as tokio) |
//! | `defmt` | `defmt::Format` on [`BareError`] and the vox-types errors |
#![cfg_attr(docsrs, feature(doc_cfg))]
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
mod bare_acceptor;
mod bare_conduit;
mod bare_error;
mod bare_rx;
mod bare_tx;

#[cfg(feature = "alloc")]
pub use bare_acceptor::{
    BareAcceptor, BareAcceptorParts, BareAcceptorRunner, BareAcceptorStats, CountedLink, CountedRx, CountedTx,
};
pub use bare_conduit::BareConduit;
pub use bare_error::BareError;
pub use bare_rx::BareRx;
pub use bare_tx::{BarePermit, BareTx};
