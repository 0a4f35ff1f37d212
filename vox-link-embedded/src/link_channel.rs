//! `LinkChannel`: a link source the application feeds, e.g. with a new
//! framed link on the same serial port after each link death.

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::channel::Channel;
use vox_types::{Link, LinkError, LinkSource, MaybeSend, MaybeSync};

/// Hands links from the application to whoever takes them as a
/// [`LinkSource`] (a stable conduit's driver), one at a time. Usable in a
/// `static`.
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use futures::executor::block_on;
/// use vox_link_embedded::{LinkChannel, MemoryLink, MemoryLinkPair};
/// use vox_types::{Link, LinkSource, LinkTx};
///
/// type Mem = MemoryLink<CriticalSectionRawMutex, 2, 64>;
/// static PAIRS: [MemoryLinkPair<CriticalSectionRawMutex, 2, 64>; 2] = [MemoryLinkPair::new(), MemoryLinkPair::new()];
/// let links = LinkChannel::<CriticalSectionRawMutex, Mem>::new();
/// // A firmware offers each new link from its serial-port task
/// // (`FramedPort::serve(.., |link| links.offer(link))`).
/// let (first, _peer) = PAIRS[0].split();
/// block_on(links.offer(first));
/// let (second, _peer) = PAIRS[1].split();
/// let second = links.try_offer(second).unwrap_err(); // one at a time
///
/// // The driver takes them: `driver.run(links.receiver(), clock)`.
/// let mut source = links.receiver();
/// let (tx, _rx) = block_on(source.next_link())?.split();
/// assert_eq!(tx.max_payload(), 64);
/// assert!(links.try_offer(second).is_ok(), "room again");
/// # Ok::<(), vox_types::LinkError>(())
/// ```
pub struct LinkChannel<M: RawMutex, L> {
    links: Channel<M, L, 1>,
}

impl<M: RawMutex, L> LinkChannel<M, L> {
    /// An empty channel.
    pub const fn new() -> Self {
        Self { links: Channel::new() }
    }

    /// Offers a fresh link; waits while the previous one was not taken.
    pub async fn offer(&self, link: L) {
        self.links.send(link).await;
    }

    /// Offers a link without waiting; gives it back if one is waiting
    /// already.
    pub fn try_offer(&self, link: L) -> Result<(), L> {
        self.links.try_send(link).map_err(|embassy_sync::channel::TrySendError::Full(l)| l)
    }

    /// Takes the waiting link back, if any.
    pub fn try_receive(&self) -> Option<L> {
        self.links.try_receive().ok()
    }

    /// The source side: what a stable conduit's driver runs on.
    pub fn receiver(&self) -> LinkChannelReceiver<'_, M, L> {
        LinkChannelReceiver { channel: self }
    }
}

impl<M: RawMutex, L> Default for LinkChannel<M, L> {
    fn default() -> Self {
        Self::new()
    }
}

/// The [`LinkSource`] side of a [`LinkChannel`].
pub struct LinkChannelReceiver<'a, M: RawMutex, L> {
    channel: &'a LinkChannel<M, L>,
}

impl<M, L> LinkSource for LinkChannelReceiver<'_, M, L>
where
    M: RawMutex + MaybeSync + MaybeSend,
    L: Link + MaybeSend,
{
    type Link = L;

    async fn next_link(&mut self) -> Result<L, LinkError> {
        Ok(self.channel.links.receive().await)
    }
}

/// A [`LinkChannel`] on the heap, shared by whoever offers links and the
/// driver that takes them (a [`LinkSource`]).
#[cfg(feature = "alloc")]
pub struct SharedLinkChannel<M: RawMutex, L>(alloc::sync::Arc<LinkChannel<M, L>>);

#[cfg(feature = "alloc")]
impl<M: RawMutex, L> SharedLinkChannel<M, L> {
    /// An empty shared channel.
    pub fn new() -> Self {
        Self(alloc::sync::Arc::new(LinkChannel::new()))
    }
}

#[cfg(feature = "alloc")]
impl<M: RawMutex, L> Default for SharedLinkChannel<M, L> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl<M: RawMutex, L> Clone for SharedLinkChannel<M, L> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

#[cfg(feature = "alloc")]
impl<M: RawMutex, L> core::ops::Deref for SharedLinkChannel<M, L> {
    type Target = LinkChannel<M, L>;
    fn deref(&self) -> &LinkChannel<M, L> {
        &self.0
    }
}

#[cfg(feature = "alloc")]
impl<M, L> LinkSource for SharedLinkChannel<M, L>
where
    M: RawMutex + MaybeSync + MaybeSend,
    L: Link + MaybeSend,
{
    type Link = L;

    async fn next_link(&mut self) -> Result<L, LinkError> {
        Ok(self.0.links.receive().await)
    }
}
