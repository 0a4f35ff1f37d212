//! [`BareConduit`]: typed messages over any [`Link`](vox_types::Link),
//! postcard-encoded in place, decoded zero-copy; dies with its link.
//!
//! ```text
//! connect:  prologue each way (magic, version, mode = bare, role, schema fingerprint)
//! send:     reserve → F::encoded_len → alloc(exactly that) → F::encode in the slot → commit
//! receive:  link payload → SelfRef<F> whose &str / &[u8] point into the payload
//! ```
//!
//! Over an in-memory link pair (a framed link over a UART or TCP works
//! the same way):
//!
//! ```
//! use embassy_futures::join::join;
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use vox_conduit_bare::BareConduit;
//! use vox_link_embedded::MemoryLinkPair;
//! use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, SessionRole};
//!
//! #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
//! pub struct Ping<'a> {
//!     pub seq: u32,
//!     pub note: &'a str,
//! }
//! vox_types::msg_family!(pub PingFamily => Ping<'a>);
//!
//! static PAIR: MemoryLinkPair<CriticalSectionRawMutex, 4, 128> = MemoryLinkPair::new();
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! futures::executor::block_on(async {
//!     let (a, b) = PAIR.split();
//!     // Both ends exchange prologues: mode, role and schema fingerprint.
//!     let (host, device) = join(
//!         BareConduit::<_, PingFamily>::connect(a, SessionRole::Initiator),
//!         BareConduit::<_, PingFamily>::connect(b, SessionRole::Acceptor),
//!     )
//!     .await;
//!     let (tx, _host_rx) = host?.split();
//!     let (_device_tx, mut rx) = device?.split();
//!     tx.reserve().await?.send(Ping { seq: 1, note: "hello" })?;
//!     let msg = rx.recv().await?.expect("the link is open");
//!     // `note` borrows the received payload: no copy.
//!     assert_eq!(msg.get::<PingFamily>().note, "hello");
//!     Ok(())
//! })
//! # }
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
//! | `defmt` | `defmt::Format` on [`ConnectError`], [`SendError`], [`RecvError`] and the vox-types errors |
#![cfg_attr(docsrs, feature(doc_cfg))]
// r[impl port.targets]
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
mod bare_acceptor;
mod bare_conduit;
mod bare_rx;
mod bare_tx;
mod error;

#[cfg(feature = "alloc")]
pub use bare_acceptor::{
    BareAcceptor, BareAcceptorParts, BareAcceptorRunner, BareAcceptorStats, CountedLink, CountedRx, CountedTx,
    DEFAULT_MIN_IDLE_MS,
};
pub use bare_conduit::BareConduit;
pub use bare_rx::BareRx;
pub use bare_tx::{BarePermit, BareTx};
pub use error::{ConnectError, RecvError, SendError};
