//! `BareRx`: the receiving half, decoding zero-copy into `SelfRef`.

use crate::BareError;
use crate::bare_conduit::Family;
use vox_types::{ConduitRx, LinkError, LinkRx, MsgFamily, RecvResult, SelfRef, decode_message};

/// Receiving half of a [`BareConduit`](crate::BareConduit).
pub struct BareRx<R, F> {
    link: R,
    /// The link's failure; reported again on every later call.
    dead: Option<LinkError>,
    _family: Family<F>,
}

impl<R, F> BareRx<R, F> {
    pub(crate) fn new(link: R) -> Self {
        Self { link, dead: None, _family: Family::default() }
    }
}

impl<R, F> ConduitRx for BareRx<R, F>
where
    R: LinkRx,
    F: MsgFamily,
{
    type Msg = F;
    type Error = BareError;

    /// The next message, its borrowed fields pointing into the received
    /// payload; `Ok(None)` once the peer closed. A payload that does not
    /// decode is [`BareError::Decode`] and the conduit stays usable; a link
    /// failure is [`BareError::Link`], now and on every later call.
    // r[impl conduit.recv]
    // r[impl conduit.zero-copy]
    async fn recv(&mut self) -> RecvResult<F, BareError> {
        if let Some(e) = self.dead {
            return Err(BareError::Link(e));
        }
        let backing = match self.link.recv().await {
            Ok(Some(backing)) => backing,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.dead = Some(e);
                return Err(BareError::Link(e));
            }
        };
        SelfRef::try_new::<F, _>(backing, decode_exact::<F>).map(Some)
    }
}

/// Decodes a whole payload into a [`BareError::Decode`] naming the family.
fn decode_exact<F: MsgFamily>(bytes: &[u8]) -> Result<F::Msg<'_>, BareError> {
    decode_message::<F>(bytes).map_err(|error| BareError::Decode { family: F::NAME, error })
}
