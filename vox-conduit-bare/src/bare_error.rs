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
            Self::Handshake(HandshakeError::TimedOut) => ErrorKind::LinkLost,
            Self::Handshake(_) => ErrorKind::Other,
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

#[cfg(test)]
mod tests {
    use super::*;
    use vox_types::PrologueError;

    // r[verify found.error-kind]
    #[test]
    fn every_error_has_the_kind_a_layer_above_needs() {
        let refused = PrologueError::UnsupportedVersion { found: 9, supported: 1 };
        let encode = |error| BareError::Encode { family: "F", error };
        let cases = [
            (BareError::Link(LinkError::Reset), ErrorKind::LinkLost),
            (BareError::Link(LinkError::CrcMismatch), ErrorKind::LinkLost),
            (BareError::Link(LinkError::Closed), ErrorKind::Closed),
            (BareError::Link(LinkError::TooLarge { len: 9, max: 8 }), ErrorKind::TooLarge),
            (BareError::Handshake(HandshakeError::Link(LinkError::Reset)), ErrorKind::LinkLost),
            (BareError::Handshake(HandshakeError::Prologue(refused)), ErrorKind::Refused),
            (BareError::Handshake(HandshakeError::PeerClosed), ErrorKind::Closed),
            (BareError::Handshake(HandshakeError::TimedOut), ErrorKind::LinkLost),
            (BareError::Decode { family: "F", error: postcard::Error::DeserializeUnexpectedEnd }, ErrorKind::Decode),
            (encode(postcard::Error::SerializeBufferFull), ErrorKind::TooLarge),
            (encode(postcard::Error::SerdeSerCustom), ErrorKind::Other),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }
}
