//! `AcceptorConfig`: the tunables of a [`StableAcceptor`](crate::StableAcceptor),
//! checked before it takes a link.

use crate::ConfigError;

/// How many sessions a [`StableAcceptor`](crate::StableAcceptor) keeps,
/// how many handshakes it runs at once and how many new sessions may wait
/// for `accept`.
///
/// ```
/// use vox_conduit_stable::AcceptorConfig;
///
/// // 10,000 devices; the defaults for the rest.
/// let config = AcceptorConfig::with_sessions(10_000);
/// assert_eq!(config.queue, 10_000, "a burst that fits the table waits whole");
/// assert_eq!(config.pending, AcceptorConfig::DEFAULT_PENDING);
/// config.check()?;
/// # Ok::<(), vox_conduit_stable::ConfigError>(())
/// ```
// r[impl core.config]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AcceptorConfig {
    /// Sessions in the table at most. A new session may take the place of
    /// one that ended, finished or has been silent without a link for its
    /// timeout; never of a live one (the newcomer gets `TableFull`).
    pub sessions: usize,
    /// Handshakes in progress at most: a new link takes a free place, else
    /// the place of the oldest handshake that has presented nothing valid;
    /// see [`PendingHandshakes`](vox_types::PendingHandshakes) for the
    /// policy and its bound.
    pub pending: usize,
    /// New sessions waiting for `accept` at most; a hello beyond them gets
    /// `Busy` (the initiator may try again).
    pub queue: usize,
}

impl AcceptorConfig {
    /// Default handshake places: 1,024 (a client that speaks within
    /// 1,024 / R seconds is served while idle connections arrive at R a
    /// second).
    pub const DEFAULT_PENDING: usize = 1_024;

    /// `sessions` in the table, [`DEFAULT_PENDING`](Self::DEFAULT_PENDING)
    /// handshake places, and an accept queue as large as the table.
    pub const fn with_sessions(sessions: usize) -> Self {
        Self { sessions, pending: Self::DEFAULT_PENDING, queue: sessions }
    }

    /// Handshake places at most (they are allocated up front).
    pub const MAX_PENDING: usize = 65_536;

    /// Whether this configuration can work: every count at least 1, and
    /// at most [`MAX_PENDING`](Self::MAX_PENDING) handshake places.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (field, value) in [("sessions", self.sessions), ("pending", self.pending), ("queue", self.queue)] {
            if value == 0 {
                return Err(ConfigError::AcceptorFieldZero { field });
            }
        }
        if self.pending > Self::MAX_PENDING {
            return Err(ConfigError::AcceptorPendingTooLarge { pending: self.pending, max: Self::MAX_PENDING });
        }
        Ok(())
    }
}

impl Default for AcceptorConfig {
    /// 1,024 sessions, 1,024 handshake places, a queue of 1,024.
    fn default() -> Self {
        Self::with_sessions(1_024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // r[verify core.config]
    #[test]
    fn every_count_must_be_at_least_one() {
        assert_eq!(AcceptorConfig::default().check(), Ok(()));
        let zero_queue = AcceptorConfig { queue: 0, ..AcceptorConfig::with_sessions(4) };
        assert_eq!(zero_queue.check(), Err(ConfigError::AcceptorFieldZero { field: "queue" }));
        let zero_sessions = AcceptorConfig::with_sessions(0);
        let refused = zero_sessions.check().unwrap_err();
        assert_eq!(refused, ConfigError::AcceptorFieldZero { field: "sessions" });
        assert_eq!(std::format!("{refused}"), "the acceptor's `sessions` must be at least 1");
        let huge = AcceptorConfig { pending: 1 << 20, ..AcceptorConfig::default() };
        assert_eq!(huge.check(), Err(ConfigError::AcceptorPendingTooLarge { pending: 1 << 20, max: 65_536 }));
    }
}
