//! The `Link` traits: framed bytes with permit-based, backpressured sending.

use crate::{Backing, LinkError, MaybeSend, MaybeSync};
use core::future::Future;
use core::task::{Context, Poll};

/// A bidirectional carrier of whole payloads (frames) of bytes.
///
/// Rules every implementation follows (the link contract): one committed payload is
/// received as exactly one payload, in commit order, without duplicates;
/// zero-length payloads are payloads; a graceful close is seen by the peer as
/// end-of-stream after every earlier payload; after an Rx error the link is
/// dead.
pub trait Link {
    /// Sending half.
    type Tx: LinkTx;
    /// Receiving half.
    type Rx: LinkRx;

    /// Splits into halves that can live in different tasks.
    // r[impl link.split]
    fn split(self) -> (Self::Tx, Self::Rx);
}

/// Sending half of a [`Link`].
///
/// Sending is [`reserve`](Self::reserve) → [`alloc`](LinkTxPermit::alloc) →
/// write into [`as_mut_slice`](WriteSlot::as_mut_slice) →
/// [`commit`](WriteSlot::commit). Only `reserve` awaits.
// r[impl link.reserve]
pub trait LinkTx: MaybeSend + MaybeSync {
    /// Permit to send one payload; dropping it returns its capacity.
    type Permit<'a>: LinkTxPermit + MaybeSend
    where
        Self: 'a;

    /// Waits for capacity for one payload: the backpressure point.
    ///
    /// Cancel-safe: dropping the future before it completes reserves
    /// nothing. Fails when the link is closed or dead. A caller may poll
    /// it once with a no-op waker to take room that is free now (the
    /// stable driver does, to send a burst under one lock) and drop it if
    /// it is pending: an implementation must not lose a wake-up or room
    /// to that, nor count it as a wait of its own.
    fn reserve(&self) -> impl Future<Output = Result<Self::Permit<'_>, LinkError>> + MaybeSend + '_;

    /// Largest payload [`LinkTxPermit::alloc`] accepts, in bytes.
    fn max_payload(&self) -> usize;

    /// Graceful close: the peer receives every committed payload, then
    /// end-of-stream.
    fn close(self) -> impl Future<Output = Result<(), LinkError>> + MaybeSend
    where
        Self: Sized;
}

/// Capacity for exactly one payload, obtained from [`LinkTx::reserve`].
pub trait LinkTxPermit {
    /// Where the payload is written.
    type Slot: WriteSlot + MaybeSend;

    /// Turns the permit into a slot of exactly `len` bytes.
    ///
    /// Fails with [`LinkError::TooLarge`] when `len` exceeds
    /// [`LinkTx::max_payload`]; the permit's capacity is then returned.
    fn alloc(self, len: usize) -> Result<Self::Slot, LinkError>;
}

/// A payload being written; dropped without [`commit`](Self::commit) it
/// publishes nothing and returns its capacity.
pub trait WriteSlot {
    /// The payload bytes, exactly the `len` given to `alloc`.
    fn as_mut_slice(&mut self) -> &mut [u8];

    /// Publishes exactly the slot's bytes. Synchronous; never waits.
    fn commit(self);
}

/// Receiving half of a [`Link`].
pub trait LinkRx: MaybeSend {
    /// The next payload, `Ready(Ok(None))` at end-of-stream (and on every
    /// call after it), or an error after which the link is dead;
    /// `Pending` with `cx`'s waker registered while nothing is there.
    ///
    /// The payload's bytes are a [`Backing`]: a slot lent by the link that
    /// returns to it when dropped, or heap storage.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Backing>, LinkError>>;

    /// [`poll_recv`](Self::poll_recv) for a receiver done with the bytes at
    /// once (a conduit's driver copying them into its own ring): the
    /// payload is handed to `f` in place and returns to the link when `f`
    /// does, and `f`'s result is returned. A link may skip a [`Backing`]'s
    /// bookkeeping this way (on storage shared through an `Arc`, a
    /// reference count taken and dropped: two atomic operations per
    /// payload on a host; nothing on static storage).
    ///
    /// `f` runs only for a payload (`Ready(Ok(Some(_)))`), never when
    /// pending, at the end of the stream or on an error. The payload's
    /// slot stays taken while `f` runs (a sender may be waiting for it):
    /// keep `f` short. An implementation must behave as `poll_recv`
    /// followed by `f` and dropping the payload; a wrapper whose
    /// `poll_recv` does more than forward keeps this default instead of
    /// forwarding it.
    ///
    /// ```
    /// use core::task::{Context, Poll};
    /// use vox_types::{Backing, LinkError, LinkRx};
    ///
    /// /// A receiver with one payload, then the end of the stream.
    /// struct One(Option<&'static [u8]>);
    ///
    /// impl LinkRx for One {
    ///     fn poll_recv(&mut self, _: &mut Context<'_>) -> Poll<Result<Option<Backing>, LinkError>> {
    ///         Poll::Ready(Ok(self.0.take().map(Backing::from_static)))
    ///     }
    /// }
    ///
    /// let mut rx = One(Some(b"hello"));
    /// let mut cx = Context::from_waker(core::task::Waker::noop());
    /// // The bytes are looked at where they are; only the length is kept.
    /// assert_eq!(rx.poll_recv_in_place(&mut cx, |bytes| bytes.len()), Poll::Ready(Ok(Some(5))));
    /// assert_eq!(rx.poll_recv_in_place(&mut cx, |bytes| bytes.len()), Poll::Ready(Ok(None)));
    /// ```
    fn poll_recv_in_place<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Poll<Result<Option<R>, LinkError>> {
        self.poll_recv(cx).map(|got| got.map(|payload| payload.map(|b| f(b.as_bytes()))))
    }

    /// The next payload (see [`poll_recv`](Self::poll_recv)). Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Backing>, LinkError>> + MaybeSend + '_
    where
        Self: Sized,
    {
        core::future::poll_fn(move |cx| self.poll_recv(cx))
    }
}
