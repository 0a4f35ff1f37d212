//! `LinkChannel`: a link source the application feeds, e.g. with a new
//! framed link on the same serial port after each link death.

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::channel::Channel;
use vox_types::{Link, LinkError, LinkSource, MaybeSend, MaybeSync};

/// Hands links from the application to a stable conduit's driver, one at
/// a time. Usable in a `static`.
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

    /// The source side, for [`StableDriver::run`](crate::StableDriver::run).
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
