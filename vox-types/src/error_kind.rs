//! `ErrorKind` and `ConduitError`: what any conduit's error means to the
//! layer above it (retry on a new link, start a new session, give up), in
//! one small enum.

use crate::LinkError;
use core::fmt;

/// What happened, as a layer above a conduit needs to know it: whether a
/// new link, a new session or nothing will help.
///
/// No kind says that a message committed before the error was *not*
/// delivered: once `send` returned `Ok`, the peer may have it, whatever
/// fails later. A layer above (calls) decides "may have run" from what it
/// committed, and the kind from what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorKind {
    /// The link under the conduit failed (reset, I/O error, corrupt
    /// frame). A bare conduit dies with it; a stable conduit never reports
    /// it (it reattaches and replays).
    LinkLost,
    /// The session is gone: the peer restarted or forgot it, or no link
    /// will reach it again. Messages not yet acknowledged may or may not
    /// have been delivered.
    SessionLost,
    /// This side closed the conduit (or its sending direction), in order;
    /// a peer's orderly close is not an error (`recv` gives `Ok(None)`).
    Closed,
    /// A received message is not a valid message of the family; the
    /// conduit may still be usable.
    Decode,
    /// A message is larger than the conduit or link carries; nothing was
    /// sent.
    TooLarge,
    /// The peer or the configuration refused the conduit or a new session
    /// (another schema, mode, role or protocol version; an acceptor whose
    /// table is full or that is busy; a link too small for the
    /// configuration). Trying again unchanged fails the same way, unless
    /// the peer's state changes (a table with room again).
    Refused,
    /// Anything else (an encoding error, a protocol violation).
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LinkLost => "link lost",
            Self::SessionLost => "session lost",
            Self::Closed => "closed",
            Self::Decode => "undecodable message",
            Self::TooLarge => "message too large",
            Self::Refused => "refused",
            Self::Other => "other error",
        })
    }
}

/// An error of a [`Conduit`](crate::Conduit) operation: the trait bound on
/// every conduit error type, so a layer above any conduit (the bare and
/// stable ones, or your own) classifies failures through
/// [`kind`](Self::kind).
///
/// Implementing it for your own conduit's error is one `match`:
///
/// ```
/// use vox_types::{ConduitError, ErrorKind};
///
/// #[derive(Debug)]
/// enum MyError {
///     Disconnected,
///     BadBytes,
/// }
/// # impl core::fmt::Display for MyError {
/// #     fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { write!(f, "{self:?}") }
/// # }
/// # impl core::error::Error for MyError {}
///
/// impl ConduitError for MyError {
///     fn kind(&self) -> ErrorKind {
///         match self {
///             MyError::Disconnected => ErrorKind::LinkLost,
///             MyError::BadBytes => ErrorKind::Decode,
///         }
///     }
/// }
///
/// assert_eq!(MyError::BadBytes.kind(), ErrorKind::Decode);
/// ```
// r[impl found.error-kind]
pub trait ConduitError: core::error::Error {
    /// What happened.
    fn kind(&self) -> ErrorKind;
}

impl ConduitError for LinkError {
    /// `TooLarge` for a payload over the link's maximum, `LinkLost` for
    /// everything else: the link is dead (a peer that dropped its half
    /// without closing, `Closed`, included).
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            _ => ErrorKind::LinkLost,
        }
    }
}

impl ConduitError for core::convert::Infallible {
    fn kind(&self) -> ErrorKind {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // r[verify found.error-kind]
    #[test]
    fn link_errors_have_kinds() {
        assert_eq!(LinkError::TooLarge { len: 2, max: 1 }.kind(), ErrorKind::TooLarge);
        assert_eq!(LinkError::Closed.kind(), ErrorKind::LinkLost, "a dead link, whoever dropped it");
        assert_eq!(LinkError::Reset.kind(), ErrorKind::LinkLost);
        assert_eq!(LinkError::CrcMismatch.kind(), ErrorKind::LinkLost);
        assert_eq!(std::string::ToString::to_string(&ErrorKind::SessionLost), "session lost");
    }
}
