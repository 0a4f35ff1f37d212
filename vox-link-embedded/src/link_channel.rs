//! `LinkChannel`: a link source the application feeds, e.g. with a new
//! framed link on the same serial port after each link death.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Context, Poll};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::waitqueue::WakerRegistration;
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
    place: Mutex<M, RefCell<Place<L>>>,
}

/// The one link waiting, and who waits for it or for its room. Written
/// here rather than with `embassy_sync::channel::Channel<_, _, 1>`: a
/// handoff of one needs no queue (96 B less flash and 8 B less RAM on
/// the lm3s6965 demo device).
struct Place<L> {
    link: Option<L>,
    /// The receiver, waiting for a link.
    taker: WakerRegistration,
    /// An `offer`, waiting for the place to free.
    offerer: WakerRegistration,
}

impl<M: RawMutex, L> LinkChannel<M, L> {
    /// An empty channel.
    pub const fn new() -> Self {
        Self {
            place: Mutex::new(RefCell::new(Place {
                link: None,
                taker: WakerRegistration::new(),
                offerer: WakerRegistration::new(),
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Place<L>) -> R) -> R {
        self.place.lock(|place| f(&mut place.borrow_mut()))
    }

    /// Offers a fresh link; waits while the previous one was not taken.
    pub fn offer(&self, link: L) -> impl Future<Output = ()> {
        // A `poll_fn`, not an `async fn`: the link is held once, not twice.
        let mut link = Some(link);
        poll_fn(move |cx| {
            self.with(|place| {
                if place.link.is_some() {
                    place.offerer.register(cx.waker());
                    return Poll::Pending;
                }
                place.link = link.take();
                place.taker.wake();
                Poll::Ready(())
            })
        })
    }

    /// Offers a link without waiting; gives it back if one is waiting
    /// already.
    pub fn try_offer(&self, link: L) -> Result<(), L> {
        self.with(|place| {
            if place.link.is_some() {
                return Err(link);
            }
            place.link = Some(link);
            place.taker.wake();
            Ok(())
        })
    }

    /// Takes the waiting link back, if any.
    pub fn try_receive(&self) -> Option<L> {
        self.with(|place| {
            let link = place.link.take();
            if link.is_some() {
                place.offerer.wake();
            }
            link
        })
    }

    /// The next link offered: the waiting one, or the next to come
    /// (`Pending` with `cx`'s waker registered while there is none).
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<L, LinkError>> {
        self.with(|place| match place.link.take() {
            Some(link) => {
                place.offerer.wake();
                Poll::Ready(Ok(link))
            }
            None => {
                place.taker.register(cx.waker());
                Poll::Pending
            }
        })
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

    fn next_link(&mut self) -> impl Future<Output = Result<L, LinkError>> + MaybeSend + '_ {
        poll_fn(|cx| self.channel.poll_receive(cx))
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

    fn next_link(&mut self) -> impl Future<Output = Result<L, LinkError>> + MaybeSend + '_ {
        poll_fn(|cx| self.0.poll_receive(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryLink, MemoryLinkPair};
    use core::pin::pin;
    use core::task::{Context, Waker};
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use futures::executor::block_on;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// Counts its wakes.
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    type Mem = MemoryLink<CriticalSectionRawMutex, 2, 64>;

    #[test]
    fn an_offer_waits_until_the_waiting_link_is_taken_and_a_taker_until_one_comes() {
        static PAIRS: [MemoryLinkPair<CriticalSectionRawMutex, 2, 64>; 2] =
            [MemoryLinkPair::new(), MemoryLinkPair::new()];
        let links = LinkChannel::<CriticalSectionRawMutex, Mem>::new();
        let mut source = links.receiver();
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        // Nothing offered: the taker waits, and is woken by an offer.
        assert!(pin!(source.next_link()).poll(&mut cx).is_pending());
        let ((first, _p1), (second, _p2)) = (PAIRS[0].split(), PAIRS[1].split());
        block_on(links.offer(first));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        // The place is taken: the second offer waits...
        let mut offer = pin!(links.offer(second));
        assert!(offer.as_mut().poll(&mut cx).is_pending());
        // ...until the first link is taken (which wakes it), then goes in.
        drop(block_on(source.next_link()).unwrap());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
        assert!(offer.as_mut().poll(&mut cx).is_ready());
        assert!(links.try_receive().is_some(), "the second link waits");
        assert!(links.try_receive().is_none());
    }
}
