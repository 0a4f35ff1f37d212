//! `LinkSource`: an async provider of fresh links (a reconnecting dialer,
//! a listener, a serial port that gets a new framed link attached).

use crate::{Link, LinkError, MaybeSend};
use core::future::Future;

/// Hands out fresh links, one per call; a stable conduit asks for one at
/// each (re)attachment.
// r[impl stable.link-source]
pub trait LinkSource {
    /// The links it makes.
    type Link: Link;

    /// The next fresh link. [`LinkError::Closed`] means the source is
    /// exhausted for good; any other error is transient and the caller may
    /// retry later.
    ///
    /// Should be cancel-safe: dropping the future before it completes must
    /// lose no link. The stable and bare acceptors' runners drop an
    /// unfinished call whenever a handshake completes first (a TCP
    /// `accept` and a channel `receive` are cancel-safe; a source that
    /// runs a TLS handshake inside `next_link` is not, and should hand
    /// the handshake to the acceptor's deadline instead).
    fn next_link(&mut self) -> impl Future<Output = Result<Self::Link, LinkError>> + MaybeSend + '_;
}

/// A source lent to a driver serves it and stays with its owner: one
/// listener, dialer or serial port serves sessions one after another
/// (`driver.run(&mut source, clock)`), with no rebinding in between.
// r[impl found.source-reuse]
impl<S: LinkSource + ?Sized> LinkSource for &mut S {
    type Link = S::Link;

    fn next_link(&mut self) -> impl Future<Output = Result<Self::Link, LinkError>> + MaybeSend + '_ {
        (**self).next_link()
    }
}
