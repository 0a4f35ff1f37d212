//! Calls over any vox conduit: a deadline on every call that holds when a
//! request is replayed after a link cut, typed outcomes that say whether a
//! request may have run, and both sides serving and calling at once.
//! `#![no_std]`, no allocator needed.
//!
//! ```text
//! declare!      endpoints once, for both sides (keys: hash of name + schemas)
//! Server        the endpoints this side serves: plain or async handlers
//! Calls         a fixed table of this side's calls in flight (a static, or an Arc)
//! Client        makes calls through the table, from any task, each with a deadline
//! run           one session on a conduit: sends and receives every frame
//! ```
//!
//! Over a [`BareConduit`](https://docs.rs/vox-conduit-bare) on an
//! in-memory link pair (a `StableConduit` over a UART works the same way,
//! and survives link cuts):
//!
//! ```
//! use core::time::Duration;
//! use embassy_futures::select::{Either, select};
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
//! use vox_conduit_bare::BareConduit;
//! use vox_link_embedded::MemoryLinkPair;
//! use vox_link_embedded::host::TokioClock;
//! use vox_rpc::{Calls, Client, RpcFamily, Server};
//! use vox_types::SessionRole;
//!
//! vox_rpc::declare! {
//!     /// Reads a sensor.
//!     pub endpoint ReadSensor = "read_sensor": u8 => i32;
//! }
//!
//! static PAIR: MemoryLinkPair<M, 4, 128> = MemoryLinkPair::new();
//! static HOST_CALLS: Calls<M, 8, 64> = Calls::new();
//! static DEVICE_CALLS: Calls<M, 1, 16> = Calls::new();
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (a, b) = PAIR.split();
//! let (host, device) = join(
//!     BareConduit::<_, RpcFamily>::connect(a, SessionRole::Acceptor),
//!     BareConduit::<_, RpcFamily>::connect(b, SessionRole::Initiator),
//! ).await;
//! # use embassy_futures::join::join;
//! // The device serves; the host serves nothing.
//! let mut device_server = core::pin::pin!(Server::new().serve::<ReadSensor, _>(|sensor| Ok(i32::from(*sensor) * 10)));
//! let mut host_server = core::pin::pin!(Server::new());
//! let client = Client::new(&HOST_CALLS, TokioClock);
//! let calling = async { client.call::<ReadSensor>(4, Duration::from_millis(200)).await };
//! let sessions = join(
//!     vox_rpc::run(host?, &HOST_CALLS, host_server.as_mut(), TokioClock),
//!     vox_rpc::run(device?, &DEVICE_CALLS, device_server.as_mut(), TokioClock),
//! );
//! match select(calling, sessions).await {
//!     Either::First(value) => assert_eq!(value, Ok(40)),
//!     Either::Second(ended) => panic!("the sessions ended first: {ended:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! | feature | effect |
//! |---------|--------|
//! | `alloc` | `Vec`, `String` and `Box` in endpoint types (postcard-schema's schemas for them) |
//! | `std`   | implies `alloc` |
//! | `send`  | futures and handles are `Send` where their parts are |
//! | `defmt` | `defmt::Format` on errors and counters; [`DefmtLogger`]: defmt frames on the conduit |
//! | `stable` | [`initiator_sessions`] / [`acceptor_sessions`]: calls over stable sessions, one after another |
// r[impl rpc.crate]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(test, feature = "std"))]
extern crate std;

mod body;
mod calls;
mod client;
mod clock_sync;
mod defmt_log;
mod describe;
mod dispatch;
#[doc(hidden)]
pub mod endpoint;
mod frame_codec;
mod outcome;
mod ring;
mod runner;
mod server;
#[cfg(feature = "stable")]
mod stable_sessions;
mod topic;
mod wire;

pub use body::{Body, EncodeBody, Postcard};
pub use calls::{CallId, CallStats, CallTable, Calls, PeerInfo};
pub use client::Client;
pub use clock_sync::{ClockSync, DRIFT_PPM};
pub use defmt_log::DefmtFrames;
#[cfg(feature = "defmt")]
pub use defmt_log::DefmtLogger;
pub use describe::{DESCRIBE, Described, Kind};
pub use dispatch::{Async, Dispatch, Handled, Nil, Outcome, Plain, Publish, Req, Subscribe};
pub use endpoint::{Endpoint, EndpointKey, NoError, Topic};
pub use outcome::CallError;
pub use runner::{RESYNC_MS, RunError, run};
pub use server::{ServeStats, Server};
#[cfg(feature = "stable")]
pub use stable_sessions::{SessionsEnded, acceptor_sessions, initiator_sessions};
pub use topic::{
    Delivery, Publication, PublicationState, PublishError, PublishStats, Received, Samples, SubscribeStats,
    Subscription, SubscriptionState,
};
pub use wire::{Frame, Hello, PROTOCOL_VERSION, Refusal, Request, RpcFamily, keys};
