//! Errors of the bare conduit, one type per operation: making the conduit
//! ([`ConnectError`]), sending ([`SendError`]) and receiving
//! ([`RecvError`]). Each says what to do next.

use core::fmt;
use vox_types::{ConduitError, ErrorKind, HandshakeError, LinkError, PrologueError};

/// Why [`BareConduit::connect`](crate::BareConduit::connect) (or an
/// acceptor's handshake) failed; no conduit was made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConnectError {
    /// The link failed during the prologue exchange: connect again on a
    /// fresh link.
    Link(LinkError),
    /// The prologues do not match (another mode, schema, role or protocol
    /// version) or the peer's was garbage; both sides refuse. Trying again
    /// fails the same way: the peer runs other firmware.
    Refused(PrologueError),
    /// The peer closed the link before sending its prologue (it is
    /// shutting down, or its acceptor is full): try again later.
    PeerClosed,
    /// No prologue came within the time limit: the peer is silent or is
    /// not a vox peer; check that it runs and serves this link.
    TimedOut,
}

impl From<HandshakeError> for ConnectError {
    fn from(e: HandshakeError) -> Self {
        match e {
            HandshakeError::Link(e) => Self::Link(e),
            HandshakeError::Prologue(e) => Self::Refused(e),
            HandshakeError::PeerClosed => Self::PeerClosed,
            HandshakeError::TimedOut => Self::TimedOut,
            // A variant added later: the closest meaning.
            _ => Self::Link(LinkError::Reset),
        }
    }
}

impl From<LinkError> for ConnectError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Link(e) => write!(f, "the link failed during the handshake ({e}); connect again on a new link"),
            Self::Refused(e) => write!(f, "the bare conduit was refused: {e}; the peer runs other firmware"),
            Self::PeerClosed => f.write_str("the peer closed the link before its prologue; try again later"),
            Self::TimedOut => f.write_str("no prologue from the peer in time; check that it runs and serves this link"),
        }
    }
}

impl core::error::Error for ConnectError {}

impl ConduitError for ConnectError {
    /// `LinkLost` for a link failure, a silent peer or a peer that closed
    /// first (another attempt may succeed), `Refused` for a refused
    /// prologue.
    // r[impl found.error-kind]
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Link(e) => e.kind(),
            Self::Refused(_) => ErrorKind::Refused,
            Self::PeerClosed | Self::TimedOut => ErrorKind::LinkLost,
        }
    }
}

/// Why `reserve`, `close` or `send` failed; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SendError {
    /// The link failed; the conduit is dead from now on: connect a new
    /// conduit on a fresh link. Messages sent before may or may not have
    /// arrived.
    // r[impl bare.dies]
    Link(LinkError),
    /// The message could not be encoded (larger than the link's maximum
    /// payload, or a value postcard cannot write); the conduit stays
    /// usable.
    Encode {
        /// [`MsgFamily::NAME`](vox_types::MsgFamily::NAME) of the message type.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
}

impl From<LinkError> for SendError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Link(LinkError::TooLarge { len, max }) => {
                write!(f, "a {len}-byte message does not fit the link's {max}-byte payload; send smaller messages")
            }
            Self::Link(e) => write!(f, "the bare conduit's link failed ({e}); connect a new conduit on a new link"),
            Self::Encode { family, error } => write!(
                f,
                "could not encode a {family} message: {error}; nothing was sent and the conduit stays usable: send a smaller or valid message"
            ),
        }
    }
}

impl core::error::Error for SendError {}

impl ConduitError for SendError {
    /// The link's kind (`LinkLost`, `TooLarge`), or `TooLarge` and
    /// `Other` for an encoding error.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Link(e) => e.kind(),
            Self::Encode { error: postcard::Error::SerializeBufferFull, .. } => ErrorKind::TooLarge,
            Self::Encode { .. } => ErrorKind::Other,
        }
    }
}

/// Why `recv` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RecvError {
    /// The link failed; the conduit is dead from now on (reported again
    /// on every later call): connect a new conduit on a fresh link.
    Link(LinkError),
    /// A received payload is not a valid message of the family (the peer
    /// sent something else under the same schema fingerprint, or the
    /// bytes were forged); the conduit stays usable.
    // r[impl conduit.bad-input]
    Decode {
        /// [`MsgFamily::NAME`](vox_types::MsgFamily::NAME) of the expected type.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
}

impl From<LinkError> for RecvError {
    fn from(e: LinkError) -> Self {
        Self::Link(e)
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Link(e) => write!(f, "the bare conduit's link failed ({e}); connect a new conduit on a new link"),
            Self::Decode { family, error } => {
                write!(f, "received payload is not a valid {family} message ({error}); the conduit goes on")
            }
        }
    }
}

impl core::error::Error for RecvError {}

impl ConduitError for RecvError {
    /// The link's kind, or `Decode`. A bare conduit has no session: it
    /// never reports `SessionLost`.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Link(e) => e.kind(),
            Self::Decode { .. } => ErrorKind::Decode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // r[verify found.error-kind]
    #[test]
    fn every_error_has_the_kind_a_layer_above_needs() {
        let refused = PrologueError::UnsupportedVersion { found: 9, supported: 1 };
        let encode = |error| SendError::Encode { family: "F", error };
        let decode = RecvError::Decode { family: "F", error: postcard::Error::DeserializeUnexpectedEnd };
        let cases: [(&dyn ConduitError, ErrorKind); 12] = [
            (&SendError::Link(LinkError::Reset), ErrorKind::LinkLost),
            (&SendError::Link(LinkError::Closed), ErrorKind::LinkLost),
            (&SendError::Link(LinkError::TooLarge { len: 9, max: 8 }), ErrorKind::TooLarge),
            (&encode(postcard::Error::SerializeBufferFull), ErrorKind::TooLarge),
            (&encode(postcard::Error::SerdeSerCustom), ErrorKind::Other),
            (&RecvError::Link(LinkError::CrcMismatch), ErrorKind::LinkLost),
            (&decode, ErrorKind::Decode),
            (&ConnectError::Link(LinkError::Reset), ErrorKind::LinkLost),
            (&ConnectError::Refused(refused), ErrorKind::Refused),
            (&ConnectError::PeerClosed, ErrorKind::LinkLost),
            (&ConnectError::TimedOut, ErrorKind::LinkLost),
            (&ConnectError::from(HandshakeError::Prologue(refused)), ErrorKind::Refused),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }
}
