//! The `Conduit` traits: typed messages over a link (the user's seed shape).

use crate::{ConduitError, MaybeSend, MsgFamily, SelfRef};
use core::future::Future;

/// Bidirectional typed transport. Wraps a [`Link`](crate::Link) and owns
/// serialization.
///
/// The same [`MsgFamily`] serves both sides: send takes `Msg<'a>` for any
/// `'a` (borrowed data serialized in place), receive yields `Msg<'static>`
/// inside a [`SelfRef`].
///
/// Implementations: `BareConduit` (link + postcard; dies with its link) and
/// `StableConduit` (plus seq/ack/replay; survives link loss).
///
/// Every error type of a conduit implements [`ConduitError`], whose
/// [`kind`](ConduitError::kind) tells a layer above (calls, topics) what
/// happened without knowing the conduit: a conduit of your own implements
/// it with one `match`.
pub trait Conduit {
    /// The message family carried.
    type Msg: MsgFamily;
    /// Sending half.
    type Tx: ConduitTx<Msg = Self::Msg>;
    /// Receiving half.
    type Rx: ConduitRx<Msg = Self::Msg>;

    /// Splits into Tx and Rx halves.
    fn split(self) -> (Self::Tx, Self::Rx);
}

/// Sending half of a [`Conduit`].
///
/// Permit-based: [`reserve`](Self::reserve) is the backpressure point,
/// [`ConduitTxPermit::send`] serializes and writes synchronously.
pub trait ConduitTx {
    /// The message family carried.
    type Msg: MsgFamily;
    /// Permit to send one message.
    type Permit<'a>: ConduitTxPermit<Msg = Self::Msg> + MaybeSend
    where
        Self: 'a;
    /// Why reserving or closing failed.
    type Error: ConduitError + MaybeSend + 'static;

    /// Reserves capacity for one outbound message.
    ///
    /// May wait for link capacity or, on a stable conduit, replay-buffer
    /// room. Dropping the permit without sending releases the reservation.
    fn reserve(&self) -> impl Future<Output = Result<Self::Permit<'_>, Self::Error>> + MaybeSend + '_;

    /// Graceful close of the outbound direction.
    fn close(self) -> impl Future<Output = Result<(), Self::Error>> + MaybeSend
    where
        Self: Sized;
}

/// Permit for sending exactly one message through a [`ConduitTx`].
pub trait ConduitTxPermit {
    /// The message family carried.
    type Msg: MsgFamily;
    /// Why encoding or sending failed; nothing was sent then.
    type Error: ConduitError + MaybeSend + 'static;

    /// Encodes and commits `item`; consumes the permit.
    fn send(self, item: <Self::Msg as MsgFamily>::Msg<'_>) -> Result<(), Self::Error>;
}

/// The result of receiving a message from a conduit.
pub type RecvResult<M, E> = Result<Option<SelfRef<M>>, E>;

/// Receiving half of a [`Conduit`].
///
/// Yields decoded values as [`SelfRef<Msg>`](SelfRef) (value plus the
/// frame its borrowed fields point into).
pub trait ConduitRx {
    /// The message family carried.
    type Msg: MsgFamily;
    /// Why receiving failed.
    type Error: ConduitError + MaybeSend + 'static;

    /// Receives and decodes the next message; `Ok(None)` when the peer has
    /// closed.
    fn recv(&mut self) -> impl Future<Output = RecvResult<Self::Msg, Self::Error>> + MaybeSend + '_;
}

/// Yields new conduits from inbound connections.
pub trait ConduitAcceptor {
    /// The conduit type produced.
    type Conduit: Conduit;
    /// Why accepting failed.
    type Error: ConduitError + MaybeSend + 'static;

    /// Waits for the next inbound conduit.
    fn accept(&mut self) -> impl Future<Output = Result<Self::Conduit, Self::Error>> + MaybeSend + '_;
}
