//! `BareRx`: the receiving half, decoding zero-copy into `SelfRef`.

use crate::RecvError;
use crate::bare_conduit::Family;
use core::task::{Context, Poll};
use vox_types::{ConduitRx, LinkError, LinkRx, MaybeSend, MsgFamily, RecvResult, SelfRef, decode_message};

/// Receiving half of a [`BareConduit`](crate::BareConduit).
pub struct BareRx<R, F> {
    link: R,
    /// The link's failure; reported again on every later call.
    dead: Option<LinkError>,
    /// The stream has ended (after the peer's close or a link failure).
    stream_done: bool,
    _family: Family<F>,
}

impl<R, F> BareRx<R, F> {
    pub(crate) fn new(link: R) -> Self {
        Self { link, dead: None, stream_done: false, _family: Family::default() }
    }
}

impl<R, F> ConduitRx for BareRx<R, F>
where
    R: LinkRx,
    F: MsgFamily,
{
    type Msg = F;
    type Error = RecvError;

    /// The next message, its borrowed fields pointing into the received
    /// payload; `Ok(None)` once the peer closed. A payload that does not
    /// decode is [`RecvError::Decode`] and the conduit stays usable; a link
    /// failure is [`RecvError::Link`], now and on every later call.
    // r[impl conduit.recv]
    // r[impl conduit.zero-copy]
    fn recv(&mut self) -> impl Future<Output = RecvResult<F, RecvError>> + MaybeSend + '_ {
        core::future::poll_fn(move |cx| self.poll_recv(cx))
    }
}

impl<R: LinkRx, F: MsgFamily> BareRx<R, F> {
    /// The poll form of [`recv`](ConduitRx::recv), for a hand-written
    /// future or a [`Stream`](futures_core::Stream).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<RecvResult<F, RecvError>> {
        if let Some(e) = self.dead {
            return Poll::Ready(Err(RecvError::Link(e)));
        }
        let backing = match self.link.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Some(backing))) => backing,
            Poll::Ready(Ok(None)) => return Poll::Ready(Ok(None)),
            Poll::Ready(Err(e)) => {
                self.dead = Some(e);
                return Poll::Ready(Err(RecvError::Link(e)));
            }
        };
        Poll::Ready(SelfRef::<F>::try_new(backing, decode_exact::<F>).map(Some))
    }
}

/// The received messages as a stream: `Some(Ok(msg))` per message;
/// `Some(Err(_))` for a payload that does not decode (the stream goes on);
/// a link failure is one `Some(Err(_))`, then the stream ends (`None`), as
/// it does after the peer closed.
// r[impl host.stream]
impl<R: LinkRx + Unpin, F: MsgFamily> futures_core::Stream for BareRx<R, F> {
    type Item = Result<SelfRef<F>, RecvError>;

    fn poll_next(self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stream_done {
            return Poll::Ready(None);
        }
        let item = core::task::ready!(this.poll_recv(cx));
        this.stream_done = matches!(item, Ok(None) | Err(RecvError::Link(_)));
        Poll::Ready(item.transpose())
    }
}

/// Decodes a whole payload into a [`RecvError::Decode`] naming the family.
fn decode_exact<F: MsgFamily>(bytes: &[u8]) -> Result<F::Msg<'_>, RecvError> {
    decode_message::<F>(bytes).map_err(|error| RecvError::Decode { family: F::NAME, error })
}
