//! `SessionRole`: which end of a session this side is.

use serde::{Deserialize, Serialize};

/// Whether the session is acting as initiator or acceptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionRole {
    /// The side that dialed or opened the link.
    Initiator,
    /// The side that listened and accepted.
    Acceptor,
}

impl SessionRole {
    /// The other role.
    pub const fn peer(self) -> Self {
        match self {
            Self::Initiator => Self::Acceptor,
            Self::Acceptor => Self::Initiator,
        }
    }
}
