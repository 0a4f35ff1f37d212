//! `LinkSource`: an async provider of fresh links (a reconnecting dialer,
//! a listener, a serial port that gets a new framed link attached).

use crate::{Link, LinkError, MaybeSend};
use core::future::Future;

/// Hands out fresh links, one per call; a stable conduit asks for one at
/// each (re)attachment.
///
/// A source that makes a given number of links, then is exhausted
/// (`Dead`, hidden here, is a link whose every operation reports
/// [`LinkError::Closed`]):
///
/// ```
/// use vox_types::{Link, LinkError, LinkSource};
/// # use core::future::{Future, ready};
/// # use core::task::{Context, Poll};
/// # use vox_types::{Backing, LinkRx, LinkTx, LinkTxPermit, MaybeSend, WriteSlot};
/// # struct Dead;
/// # impl Link for Dead { type Tx = Dead; type Rx = Dead; fn split(self) -> (Dead, Dead) { (Dead, Dead) } }
/// # type Res<T> = Result<T, LinkError>;
/// # impl LinkTx for Dead {
/// #     type Permit<'a> = Dead;
/// #     fn reserve(&self) -> impl Future<Output = Res<Dead>> + MaybeSend + '_ { ready(Err(LinkError::Closed)) }
/// #     fn max_payload(&self) -> usize { 0 }
/// #     fn close(self) -> impl Future<Output = Res<()>> + MaybeSend { ready(Ok(())) }
/// # }
/// # impl LinkTxPermit for Dead { type Slot = Dead; fn alloc(self, _: usize) -> Res<Dead> { Err(LinkError::Closed) } }
/// # impl WriteSlot for Dead { fn as_mut_slice(&mut self) -> &mut [u8] { &mut [] } fn commit(self) {} }
/// # impl LinkRx for Dead {
/// #     fn poll_recv(&mut self, _: &mut Context<'_>) -> Poll<Res<Option<Backing>>> { Poll::Ready(Ok(None)) }
/// # }
///
/// struct Budget<L> {
///     make: fn() -> L,
///     left: u32,
/// }
///
/// impl<L: Link> LinkSource for Budget<L> {
///     type Link = L;
///
///     async fn next_link(&mut self) -> Result<L, LinkError> {
///         if self.left == 0 {
///             return Err(LinkError::Closed);
///         }
///         self.left -= 1;
///         Ok((self.make)())
///     }
/// }
///
/// /// What a driver does with its source: `run(&mut source, ..)` lends it.
/// async fn one<S: LinkSource>(mut source: S) -> Result<S::Link, LinkError> {
///     source.next_link().await
/// }
///
/// # futures::executor::block_on(async {
/// let mut source = Budget { make: || Dead, left: 2 };
/// assert!(one(&mut source).await.is_ok());
/// assert!(one(&mut source).await.is_ok(), "lent, it stays with its owner");
/// assert_eq!(source.next_link().await.err(), Some(LinkError::Closed), "exhausted for good");
/// # });
/// ```
// r[impl stable.link-source]
pub trait LinkSource {
    /// The links it makes.
    type Link: Link;

    /// The next fresh link. [`LinkError::Closed`] means the source is
    /// exhausted for good, and [`LinkError::GaveUp`] that it stopped
    /// trying (a dialer's backoff ran out): drivers and acceptors end on
    /// both. Any other error is transient and the caller may retry later
    /// (they wait a moment first).
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
