//! `PendingHandshakes`: the handshakes an acceptor has in progress, polled
//! together with its link source (feature `alloc`).

use crate::{LinkError, LinkSource};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::Poll;

/// What [`PendingHandshakes::next`] saw first.
pub enum AcceptEvent<L, O> {
    /// The link source gave a link (or failed).
    Link(Result<L, LinkError>),
    /// A handshake finished with this outcome.
    Handshake(O),
}

/// At most `capacity` handshake futures in progress, each boxed once. An
/// acceptor's runner pushes one per new link and waits, with
/// [`next`](Self::next), for whichever comes first: a new link or a
/// finished handshake. So a slow handshake delays no other, and the
/// number in progress is bounded.
pub struct PendingHandshakes<H> {
    pending: Vec<Pin<Box<H>>>,
    capacity: usize,
}

impl<H: Future> PendingHandshakes<H> {
    /// An empty set for the futures `make` returns, at most `capacity` of
    /// them (at least 1). `make` only names the type.
    pub fn for_maker<A>(_make: &impl Fn(A) -> H, capacity: usize) -> Self {
        Self { pending: Vec::with_capacity(capacity.max(1)), capacity: capacity.max(1) }
    }

    /// Handshakes in progress.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is in progress.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds a handshake. When all places are taken the oldest is dropped
    /// first (with its link), and `true` says so.
    pub fn push(&mut self, handshake: H) -> bool {
        let evicted = self.pending.len() >= self.capacity;
        if evicted {
            drop(self.pending.remove(0));
        }
        self.pending.push(Box::pin(handshake));
        evicted
    }

    /// Waits for a new link from `source` or a finished handshake,
    /// whichever comes first. Each call starts a fresh `next_link`, and
    /// drops it unfinished when a handshake finishes first: `source`'s
    /// `next_link` must be cancel-safe.
    pub async fn next<S: LinkSource>(&mut self, source: &mut S) -> AcceptEvent<S::Link, H::Output> {
        let mut next_link = core::pin::pin!(source.next_link());
        poll_fn(|cx| {
            if let Poll::Ready(r) = next_link.as_mut().poll(cx) {
                return Poll::Ready(AcceptEvent::Link(r));
            }
            for i in 0..self.pending.len() {
                let Some(fut) = self.pending.get_mut(i) else { break };
                if let Poll::Ready(outcome) = fut.as_mut().poll(cx) {
                    drop(self.pending.swap_remove(i));
                    return Poll::Ready(AcceptEvent::Handshake(outcome));
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::future::{pending, ready};
    use core::task::{Context, Waker};

    /// A link that carries nothing (the source below never makes one).
    struct NoLink;
    struct NoTx;
    struct NoRx;
    struct NoPermit;
    struct NoSlot;
    impl crate::Link for NoLink {
        type Tx = NoTx;
        type Rx = NoRx;
        fn split(self) -> (NoTx, NoRx) {
            (NoTx, NoRx)
        }
    }
    impl crate::LinkTx for NoTx {
        type Permit<'a> = NoPermit;
        async fn reserve(&self) -> Result<NoPermit, LinkError> {
            pending().await
        }
        fn max_payload(&self) -> usize {
            0
        }
        async fn close(self) -> Result<(), LinkError> {
            Ok(())
        }
    }
    impl crate::LinkTxPermit for NoPermit {
        type Slot = NoSlot;
        fn alloc(self, _len: usize) -> Result<NoSlot, LinkError> {
            Err(LinkError::Closed)
        }
    }
    impl crate::WriteSlot for NoSlot {
        fn as_mut_slice(&mut self) -> &mut [u8] {
            &mut []
        }
        fn commit(self) {}
    }
    impl crate::LinkRx for NoRx {
        fn poll_recv(&mut self, _cx: &mut Context<'_>) -> Poll<Result<Option<crate::Backing>, LinkError>> {
            Poll::Pending
        }
    }

    /// A source that never yields a link.
    struct Never;
    impl LinkSource for Never {
        type Link = NoLink;
        async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
            pending().await
        }
    }

    fn poll_now<T>(fut: impl Future<Output = T>) -> Option<T> {
        let mut fut = core::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(t) => Some(t),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_finished_handshake_comes_out_and_a_full_set_drops_its_oldest() {
        let make = |n: u32| async move { if n == 0 { pending::<u32>().await } else { ready(n).await } };
        let mut set = PendingHandshakes::for_maker(&make, 2);
        assert!(!set.push(make(0)));
        assert!(!set.push(make(0)));
        assert!(set.push(make(7)), "the oldest made room");
        assert_eq!(set.len(), 2);
        let mut source = Never;
        match poll_now(set.next(&mut source)) {
            Some(AcceptEvent::Handshake(7)) => {}
            _ => panic!("the finished handshake comes out"),
        }
        assert_eq!(set.len(), 1);
        assert!(poll_now(set.next(&mut source)).is_none(), "nothing else is ready");
    }
}
