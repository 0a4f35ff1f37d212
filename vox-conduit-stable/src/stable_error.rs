//! `StableError`: why a stable conduit operation failed.

use core::fmt;
use vox_types::HandshakeError;

/// Why a [`StableConduit`](crate::StableConduit) operation failed.
///
/// Link failures never appear here: the conduit reattaches and replays.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StableError {
    /// The session is gone: the peer does not know our resume key (it
    /// restarted, or expired the session), or the peer started a new
    /// session. Messages not yet acknowledged may be lost; start a new
    /// conduit. Never raised for a transient link loss.
    // r[impl stable.session-lost]
    SessionLost,
    /// The peer refused the conduit for good (other schema, mode or
    /// protocol version).
    Handshake(HandshakeError),
    /// The link source is exhausted: no more links will come.
    SourceClosed,
    /// The peer broke the protocol (an ack for frames never sent).
    Protocol,
    /// This side closed its sending direction.
    Closed,
    /// [`StableDriver::run_initiator`](crate::StableDriver::run_initiator)
    /// was called on an acceptor's driver: an acceptor makes resume keys
    /// and needs a `CryptoRng`; use `run`.
    AcceptorNeedsRng,
    /// The encoded message is larger than the configured maximum.
    MessageTooLarge {
        /// Encoded length.
        len: usize,
        /// [`StableConfig::max_message`](crate::StableConfig::max_message).
        max: usize,
    },
    /// A received message is not a valid message of the family; the
    /// conduit stays usable.
    Decode {
        /// The family's name.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
    /// The message could not be encoded; nothing was sent.
    Encode {
        /// The family's name.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
}

impl fmt::Display for StableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SessionLost => f.write_str("session lost: the peer no longer knows this session"),
            Self::Handshake(e) => write!(f, "stable conduit refused: {e}"),
            Self::SourceClosed => f.write_str("the link source is closed"),
            Self::Protocol => f.write_str("the peer broke the stable conduit protocol"),
            Self::Closed => f.write_str("the sending direction is closed"),
            Self::AcceptorNeedsRng => f.write_str("an acceptor makes resume keys: run it with a CryptoRng"),
            Self::MessageTooLarge { len, max } => write!(f, "message of {len} bytes exceeds the maximum of {max}"),
            Self::Decode { family, error } => write!(f, "received payload is not a valid {family} message: {error}"),
            Self::Encode { family, error } => write!(f, "could not encode a {family} message: {error}"),
        }
    }
}

impl core::error::Error for StableError {}
