//! `exchange_prologue`: both sides send their prologue, then check the
//! peer's, on a fresh link (shared by every conduit).

use crate::{LinkError, LinkRx, LinkTx, LinkTxPermit, PROLOGUE_MAX_LEN, Prologue, PrologueError, WriteSlot};
use core::fmt;

/// Why a conduit could not be set up on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HandshakeError {
    /// The link failed.
    Link(LinkError),
    /// The peer's prologue was garbage, of another version, or refused
    /// (mode, schema, role).
    Prologue(PrologueError),
    /// The peer closed the link before sending its prologue.
    PeerClosed,
    /// No prologue arrived within the caller's time limit.
    TimedOut,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Link(e) => write!(f, "link failed during the prologue: {e}"),
            Self::Prologue(e) => write!(f, "prologue refused: {e}"),
            Self::PeerClosed => f.write_str("peer closed the link before its prologue"),
            Self::TimedOut => f.write_str("no prologue from the peer in time"),
        }
    }
}

impl core::error::Error for HandshakeError {}

impl From<LinkError> for HandshakeError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

impl From<PrologueError> for HandshakeError {
    fn from(e: PrologueError) -> Self {
        Self::Prologue(e)
    }
}

/// Sends `local` as the first payload, receives the peer's prologue and
/// checks it with [`Prologue::check_peer`]. Returns the peer's prologue.
///
/// Never hangs on garbage: any first payload is decoded or refused at once.
/// A silent peer is bounded by the link's end or the caller's timer.
// r[impl prologue.first]
pub async fn exchange_prologue<T: LinkTx, R: LinkRx>(
    tx: &T,
    rx: &mut R,
    local: &Prologue,
) -> Result<Prologue, HandshakeError> {
    send_prologue(tx, local).await?;
    let payload = rx.recv().await?.ok_or(HandshakeError::PeerClosed)?;
    let peer = Prologue::decode(payload.as_bytes())?;
    local.check_peer(&peer)?;
    Ok(peer)
}

/// Sends `local` as one payload on `tx` (the first of a link, or an
/// acceptor's answer to the initiator's prologue).
pub async fn send_prologue<T: LinkTx>(tx: &T, local: &Prologue) -> Result<(), HandshakeError> {
    let mut buf = [0u8; PROLOGUE_MAX_LEN];
    let len = local.encode(&mut buf)?;
    let mut slot = tx.reserve().await?.alloc(len)?;
    slot.as_mut_slice().copy_from_slice(buf.get(..len).unwrap_or(&[]));
    slot.commit();
    Ok(())
}
