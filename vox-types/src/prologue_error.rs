//! `PrologueError`: why a link prologue was refused.

use crate::{ConduitMode, SchemaFingerprint, SessionRole};
use core::fmt;

/// Why a prologue could not be decoded, or was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PrologueError {
    /// The payload ended before the prologue did.
    Truncated,
    /// The payload does not start with [`PROLOGUE_MAGIC`](crate::PROLOGUE_MAGIC).
    BadMagic {
        /// The first four bytes received.
        found: [u8; 4],
    },
    /// The peer speaks another protocol version.
    UnsupportedVersion {
        /// The peer's version.
        found: u16,
        /// Ours.
        supported: u16,
    },
    /// An unknown conduit mode byte.
    UnknownMode(u8),
    /// An unknown role byte.
    UnknownRole(u8),
    /// Bytes that are not a prologue (bad varint, trailing bytes).
    Malformed,
    /// The buffer given to `encode` is shorter than
    /// [`PROLOGUE_MAX_LEN`](crate::PROLOGUE_MAX_LEN).
    BufferTooSmall,
    /// The peer asked for another conduit mode; there is no fallback.
    ModeMismatch {
        /// Our mode.
        local: ConduitMode,
        /// The peer's mode.
        peer: ConduitMode,
    },
    /// The peer's message schema differs from ours.
    SchemaMismatch {
        /// Our fingerprint.
        local: SchemaFingerprint,
        /// The peer's fingerprint.
        peer: SchemaFingerprint,
    },
    /// Both sides claim the same role.
    RoleConflict {
        /// The role both claim.
        role: SessionRole,
    },
}

impl PrologueError {
    /// Whether the peer's prologue decoded far enough to be refused for
    /// good (another schema, mode, version or role, or a mode or role
    /// this side does not know): answer it with ours, so the peer finds
    /// the same refusal, then end. Otherwise it is garbage: drop the link
    /// without an answer.
    ///
    /// ```
    /// use vox_types::PrologueError;
    ///
    /// assert!(PrologueError::UnknownMode(7).is_refusal());
    /// assert!(!PrologueError::Truncated.is_refusal());
    /// ```
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::SchemaMismatch { .. }
                | Self::ModeMismatch { .. }
                | Self::UnsupportedVersion { .. }
                | Self::RoleConflict { .. }
                | Self::UnknownMode(_)
                | Self::UnknownRole(_)
        )
    }
}

impl fmt::Display for PrologueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("prologue truncated"),
            Self::BadMagic { found } => write!(f, "not a vox prologue (magic {found:02x?})"),
            Self::UnsupportedVersion { found, supported } => {
                write!(f, "peer speaks protocol version {found}, this side speaks {supported}")
            }
            Self::UnknownMode(m) => write!(f, "unknown conduit mode {m} in prologue"),
            Self::UnknownRole(r) => write!(f, "unknown role {r} in prologue"),
            Self::Malformed => f.write_str("malformed prologue"),
            Self::BufferTooSmall => f.write_str("buffer too small for a prologue"),
            Self::ModeMismatch { local, peer } => {
                write!(f, "peer requested conduit mode {peer:?}, this side runs {local:?}; rejected")
            }
            Self::SchemaMismatch { local, peer } => {
                write!(f, "message schema mismatch: local fingerprint {local}, peer fingerprint {peer}")
            }
            Self::RoleConflict { role } => write!(f, "both sides claim role {role:?}"),
        }
    }
}

impl core::error::Error for PrologueError {}
