//! [`FramedLink`]: a link over any `embedded-io-async` byte stream (UART, USB
//! CDC-ACM, TCP), framed with COBS and checked with CRC-32.
//!
//! # Frame format
//!
//! ```text
//! frame   = COBS(payload ‖ crc) ‖ 0x00
//! crc     = CRC-32/ISO-HDLC(payload), 4 bytes, little-endian
//! ```
//!
//! - COBS is standard consistent-overhead byte stuffing (Cheshire & Baker)
//!   with `0x00` as the delimiter, so no `0x00` occurs inside a frame.
//! - CRC-32/ISO-HDLC is the zlib/Ethernet CRC: polynomial `0x04C11DB7`
//!   (reflected input and output), initial value `0xFFFFFFFF`, final xor
//!   `0xFFFFFFFF`; the CRC of the ASCII bytes `123456789` is `0xCBF43926`.
//! - A lone `0x00` (an empty frame) carries nothing and is skipped. Every
//!   runner sends one before its first frame.
//! - `01 00` (COBS of zero bytes: too short for a CRC) is the end-of-stream
//!   marker, sent when the sending half is closed gracefully.
//! - A receiver first discards bytes up to the next `0x00`, so it can attach
//!   mid-stream (a new link on the same byte stream after an error).
//! - Overhead for an `n`-byte payload: at most `ceil((n + 4) / 254)` COBS
//!   bytes, 4 CRC bytes and 1 delimiter, i.e. at most `ceil(n / 254) + 6`.
//!
//! # Speed and size
//!
//! The [`codec`] works a COBS block at a time (one zero search, one slice
//! copy) and computes the CRC once per frame. With `fast-codec` (on with
//! `std`) those are `memchr` and `crc32fast` and the runner moves up to
//! one payload slot (`MTU` bytes) per read and write; without it (MCUs) a
//! byte loop and the `crc` crate's table (none with `small-crc`), 32-byte
//! reads and writes.
//!
//! # Runner
//!
//! The I/O is a future, [`FramedRunner::run`], that the application drives:
//! spawn it on embassy or tokio, or `join` it with the application. The link
//! halves talk to it through embassy-sync primitives. It returns when the
//! link ends (error, or both directions finished), leaving the byte stream
//! to the caller, who may attach a new link to it. [`FramedPort`] does
//! that, link after link, on one byte stream.

pub mod codec;
mod port;
mod runner;
mod stats;
mod storage;

pub use port::FramedPort;
pub use runner::{FramedRunner, FramedStatsHandle};
pub use stats::FramedStats;
pub use storage::FramedLinkStorage;

use crate::queue::queue_link_types;

queue_link_types! {
    FramedLinkStorage;
    /// The application's end of a framed link: split it into its halves
    /// with [`Link::split`](vox_types::Link::split). Made with its
    /// [`FramedRunner`] by [`FramedLinkStorage::attach`] (static storage)
    /// or [`FramedLinkStorage::new_shared`] (with `alloc`).
    ///
    /// ```
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use vox_link_embedded::framed::{FramedLink, FramedLinkStorage};
    /// use vox_types::{Link, LinkTx};
    ///
    /// static STORAGE: FramedLinkStorage<CriticalSectionRawMutex, 2, 256> = FramedLinkStorage::new();
    /// let (link, _runner) = STORAGE.attach().unwrap();
    /// let (tx, _rx) = link.split();
    /// assert_eq!(tx.max_payload(), 256);
    /// // Drive `_runner.run(&mut uart_rx, &mut uart_tx)` beside the application.
    /// ```
    link FramedLink;
    /// Sending half of a [`FramedLink`]. [`close`](vox_types::LinkTx::close)
    /// ends the direction gracefully (the runner writes the end-of-stream
    /// marker after what was committed); dropping it abandons the direction
    /// (no marker, so the peer's next link on the same byte stream is not
    /// disturbed).
    tx FramedTx;
    /// Receiving half of a [`FramedLink`]: payloads are read in place from
    /// the link's slots. Dropping it makes the application's sends fail
    /// with [`LinkError::Closed`](vox_types::LinkError::Closed).
    rx FramedRx;
}
