//! `BareError`: why a bare conduit operation failed.

use core::fmt;
use vox_types::{ConduitError, ErrorKind, HandshakeError, LinkError};

/// Why a [`BareConduit`](crate::BareConduit) operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BareError {
    /// The prologue exchange failed or was refused.
    Handshake(HandshakeError),
    /// The link failed; the conduit is dead from now on.
    // r[impl bare.dies]
    Link(LinkError),
    /// A received payload is not a valid message of the family. The
    /// conduit stays usable.
    // r[impl conduit.bad-input]
    Decode {
        /// [`MsgFamily::NAME`](vox_types::MsgFamily::NAME) of the expected type.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
    /// The message could not be encoded; nothing was sent.
    Encode {
        /// [`MsgFamily::NAME`](vox_types::MsgFamily::NAME) of the message type.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
}

impl fmt::Display for BareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handshake(e) => write!(f, "bare conduit handshake failed: {e}"),
            Self::Link(e) => write!(f, "bare conduit's link failed: {e}"),
            Self::Decode { family, error } => write!(f, "received payload is not a valid {family} message: {error}"),
            Self::Encode { family, error } => write!(f, "could not encode a {family} message: {error}"),
        }
    }
}

impl core::error::Error for BareError {}

impl ConduitError for BareError {
    /// `LinkLost` (or the link's own kind: `Closed`, `TooLarge`) for a
    /// link failure or a handshake that timed out, `Refused` for a refused
    /// prologue, `Closed` for a peer that closed before its prologue,
    /// `Decode`, `TooLarge` and `Other` (encoding) otherwise. A bare conduit has no session: it
    /// never reports `SessionLost`.
    // r[impl found.error-kind]
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Handshake(HandshakeError::Link(e)) | Self::Link(e) => e.kind(),
            Self::Handshake(HandshakeError::Prologue(_)) => ErrorKind::Refused,
            Self::Handshake(HandshakeError::PeerClosed) => ErrorKind::Closed,
            Self::Handshake(_) => ErrorKind::LinkLost,
            Self::Decode { .. } => ErrorKind::Decode,
            Self::Encode { error: postcard::Error::SerializeBufferFull, .. } => ErrorKind::TooLarge,
            Self::Encode { .. } => ErrorKind::Other,
        }
    }
}

impl From<LinkError> for BareError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

impl From<HandshakeError> for BareError {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}
