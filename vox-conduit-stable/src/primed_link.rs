//! `PrimedLink`: a link whose first received payloads were already read
//! (by the acceptor, to route it) and are handed out again first.

use core::task::{Context, Poll};
use heapless::Deque;
use vox_types::{Backing, Link, LinkError, LinkRx, LinkTx, MaybeSend};

/// A link (as its two halves) with up to two payloads put back in front of
/// its receiver.
pub struct PrimedLink<T, R> {
    tx: T,
    rx: PrimedRx<R>,
}

impl<T, R> PrimedLink<T, R> {
    /// Halves `tx`/`rx`, whose receiver yields `pending` before anything new.
    #[cfg(feature = "alloc")]
    pub(crate) fn new(tx: T, rx: R, pending: Deque<Backing, 2>) -> Self {
        Self { tx, rx: PrimedRx { rx, pending } }
    }
}

/// Receiving half of a [`PrimedLink`].
pub struct PrimedRx<R> {
    rx: R,
    pending: Deque<Backing, 2>,
}

impl<T: LinkTx, R: LinkRx> Link for PrimedLink<T, R> {
    type Tx = T;
    type Rx = PrimedRx<R>;

    fn split(self) -> (T, PrimedRx<R>) {
        (self.tx, self.rx)
    }
}

impl<R: LinkRx + MaybeSend> LinkRx for PrimedRx<R> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Backing>, LinkError>> {
        match self.pending.pop_front() {
            Some(b) => Poll::Ready(Ok(Some(b))),
            None => self.rx.poll_recv(cx),
        }
    }

    fn poll_recv_in_place<T>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Poll<Result<Option<T>, LinkError>> {
        match self.pending.pop_front() {
            Some(b) => Poll::Ready(Ok(Some(f(b.as_bytes())))),
            None => self.rx.poll_recv_in_place(cx, f),
        }
    }
}
