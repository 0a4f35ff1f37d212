//! `LinkError`: why a link operation failed.

use core::fmt;

/// Why a [`Link`](crate::Link) operation failed.
///
/// After any error from [`LinkRx::recv`](crate::LinkRx::recv) the link is
/// dead (`link.rx.error`); attach a fresh link to continue.
// r[impl types.errors]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
// A word tag: an error is moved with word loads and stores, not a tag
// byte and a byte-wise copy of the rest (smaller firmware).
#[repr(u32)]
pub enum LinkError {
    /// `alloc(len)` asked for more than the link's maximum payload.
    TooLarge {
        /// Requested payload length.
        len: usize,
        /// The link's maximum payload length.
        max: usize,
    },
    /// The link was closed: locally, or the peer half was dropped.
    Closed,
    /// The link died abruptly (connection reset, killed by a fault injector).
    Reset,
    /// A received frame failed its CRC check.
    CrcMismatch,
    /// A received frame was longer than the link's maximum payload.
    Oversized,
    /// A received frame was not valid COBS or was shorter than its trailer.
    Malformed,
    /// The underlying byte stream failed.
    Io(embedded_io::ErrorKind),
    /// A link source stopped trying to make a link: a dialer's backoff
    /// gave up after `attempts` failed connection attempts (every address
    /// of every round counted); `last` is the last attempt's error. Final
    /// for a driver or acceptor on that source (the session ends); a later
    /// call of the source itself starts over.
    GaveUp {
        /// Failed attempts before giving up.
        attempts: u32,
        /// What the last attempt failed with.
        last: embedded_io::ErrorKind,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the link maximum of {max} bytes")
            }
            Self::Closed => f.write_str("link closed"),
            Self::Reset => f.write_str("link reset"),
            Self::CrcMismatch => f.write_str("received frame failed its CRC-32 check"),
            Self::Oversized => f.write_str("received frame exceeds the link maximum payload"),
            Self::Malformed => f.write_str("received frame is malformed (bad COBS or too short)"),
            Self::Io(kind) => write!(f, "byte stream error: {kind:?}"),
            Self::GaveUp { attempts, last } => {
                write!(f, "gave up making a link after {attempts} failed attempts (last: {last:?})")
            }
        }
    }
}

impl core::error::Error for LinkError {}

#[cfg(feature = "std")]
impl From<LinkError> for std::io::Error {
    fn from(e: LinkError) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e {
            LinkError::TooLarge { .. } => K::InvalidInput,
            LinkError::Closed => K::BrokenPipe,
            LinkError::Reset => K::ConnectionReset,
            LinkError::CrcMismatch | LinkError::Oversized | LinkError::Malformed => K::InvalidData,
            LinkError::Io(k) | LinkError::GaveUp { last: k, .. } => k.into(),
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrologueError;

    fn assert_error<E: core::error::Error + Send + Sync + 'static>(e: E) -> std::string::String {
        std::string::ToString::to_string(&e)
    }

    // r[verify types.errors]
    #[test]
    fn errors_are_typed_displayable_and_convert_to_io() {
        let text = assert_error(LinkError::TooLarge { len: 300, max: 256 });
        assert_eq!(text, "payload of 300 bytes exceeds the link maximum of 256 bytes");
        assert!(assert_error(PrologueError::UnsupportedVersion { found: 9, supported: 1 }).contains("version 9"));
        #[cfg(feature = "std")]
        {
            let io: std::io::Error = LinkError::Reset.into();
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
            let io: std::io::Error = LinkError::Io(embedded_io::ErrorKind::TimedOut).into();
            assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        }
    }
}
