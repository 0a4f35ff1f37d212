//! `StableConfig`: the tunables of a stable conduit.

/// Tunables of a [`StableConduit`](crate::StableConduit). Times are in
/// milliseconds of the application's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StableConfig {
    /// Largest encoded message. Must fit the link's payload with the frame
    /// header ([`wire::MAX_HEADER`](crate::wire::MAX_HEADER) bytes) and the
    /// replay buffer.
    pub max_message: usize,
    /// Send an ack-only frame after this many received frames without
    /// sending (one-way traffic).
    pub ack_every: u32,
    /// ...or after this long with an unsent ack.
    pub ack_delay_ms: u32,
    /// Send a keepalive after this long without sending anything.
    pub keepalive_ms: u32,
    /// Declare the attachment dead after this long without receiving
    /// anything (keep it above `keepalive_ms`).
    pub timeout_ms: u32,
    /// Wait this long before asking the link source again after a failure.
    pub retry_delay_ms: u32,
    /// After finishing, keep serving reattachments this long while the peer
    /// has not confirmed it finished too (its last ack may have died with a
    /// link). Keep it above `timeout_ms`.
    pub linger_ms: u32,
    /// Initiator: how long to keep trying while the acceptor answers a new
    /// session with `Busy` (its queue of sessions waiting for `accept` is
    /// full), backing off from `retry_delay_ms`; after it the session ends
    /// with `Rejected(Busy)`. At least `timeout_ms`.
    pub connect_timeout_ms: u32,
}

impl StableConfig {
    /// Defaults for a UART or TCP link: 200-byte messages, ack every 8
    /// frames or 20 ms, keepalive 250 ms, timeout 1 s, retry after 50 ms,
    /// linger 3 s, keep trying a busy acceptor for 10 s.
    pub const DEFAULT: Self = Self {
        max_message: 200,
        ack_every: 8,
        ack_delay_ms: 20,
        keepalive_ms: 250,
        timeout_ms: 1000,
        retry_delay_ms: 50,
        linger_ms: 3000,
        connect_timeout_ms: 10_000,
    };

    /// For battery devices: a keepalive each way every 10 s, so an idle
    /// session wakes about once every 5 s (its own keepalive and the
    /// peer's); a dead link is noticed after 30 s. Both sides need it (a
    /// side's keepalive must stay below its peer's timeout).
    ///
    /// ```
    /// use vox_conduit_stable::StableConfig;
    ///
    /// assert_eq!(StableConfig::LOW_POWER.check(), Ok(()));
    /// assert_eq!(StableConfig::LOW_POWER.keepalive_ms, 10_000);
    /// ```
    // r[impl core.deadline]
    pub const LOW_POWER: Self = Self {
        max_message: 200,
        ack_every: 8,
        ack_delay_ms: 20,
        keepalive_ms: 10_000,
        timeout_ms: 30_000,
        retry_delay_ms: 50,
        linger_ms: 60_000,
        connect_timeout_ms: 120_000,
    };
}

impl StableConfig {
    /// All zeros: the placeholder in fresh storage (zero bytes keep a
    /// `static` out of flash), replaced before use.
    pub(crate) const ZEROED: Self = Self {
        max_message: 0,
        ack_every: 0,
        ack_delay_ms: 0,
        keepalive_ms: 0,
        timeout_ms: 0,
        retry_delay_ms: 0,
        linger_ms: 0,
        connect_timeout_ms: 0,
    };
}

impl StableConfig {
    /// Checks that the timings and sizes can work together: `ack_every`
    /// at least 1; a silence timeout above zero and above both the
    /// keepalive interval and the ack delay (else a quiet but healthy
    /// link is declared dead); a linger time of at least one timeout (the
    /// peer's last ack may need a reattachment); a connect timeout of at
    /// least one timeout (time for one handshake).
    ///
    /// ```
    /// use vox_conduit_stable::{ConfigError, StableConfig};
    ///
    /// // A keepalive slower than the silence timeout: a quiet but healthy
    /// // link would be declared dead.
    /// let config = StableConfig { keepalive_ms: 2_000, ..StableConfig::DEFAULT };
    /// let refused = ConfigError::KeepaliveNotBelowTimeout { keepalive_ms: 2_000, timeout_ms: 1_000 };
    /// assert_eq!(config.check(), Err(refused));
    /// // `const`: a firmware can refuse its configuration at compile time.
    /// const _: () = assert!(StableConfig::DEFAULT.check().is_ok());
    /// ```
    // r[impl stable.config.check]
    // r[impl proto.timing]
    pub const fn check(&self) -> Result<(), ConfigError> {
        if self.ack_every == 0 {
            return Err(ConfigError::AckEveryZero);
        }
        if self.keepalive_ms == 0 {
            return Err(ConfigError::KeepaliveZero);
        }
        if self.timeout_ms == 0 || self.keepalive_ms >= self.timeout_ms {
            return Err(ConfigError::KeepaliveNotBelowTimeout {
                keepalive_ms: self.keepalive_ms,
                timeout_ms: self.timeout_ms,
            });
        }
        if self.ack_delay_ms >= self.timeout_ms {
            return Err(ConfigError::AckDelayNotBelowTimeout {
                ack_delay_ms: self.ack_delay_ms,
                timeout_ms: self.timeout_ms,
            });
        }
        if self.linger_ms < self.timeout_ms {
            return Err(ConfigError::LingerBelowTimeout { linger_ms: self.linger_ms, timeout_ms: self.timeout_ms });
        }
        if self.connect_timeout_ms < self.timeout_ms {
            return Err(ConfigError::ConnectTimeoutBelowTimeout {
                connect_timeout_ms: self.connect_timeout_ms,
                timeout_ms: self.timeout_ms,
            });
        }
        Ok(())
    }
}

/// A configuration that cannot work, refused before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `ack_every` is 0.
    AckEveryZero,
    /// `keepalive_ms` is 0: a keepalive would be due at every instant (and
    /// every frame received would be answered at once).
    KeepaliveZero,
    /// The keepalive must come before the silence timeout (which must be
    /// above zero).
    KeepaliveNotBelowTimeout {
        /// [`StableConfig::keepalive_ms`].
        keepalive_ms: u32,
        /// [`StableConfig::timeout_ms`].
        timeout_ms: u32,
    },
    /// A delayed ack must go out before the peer's silence timeout.
    AckDelayNotBelowTimeout {
        /// [`StableConfig::ack_delay_ms`].
        ack_delay_ms: u32,
        /// [`StableConfig::timeout_ms`].
        timeout_ms: u32,
    },
    /// Lingering less than one timeout cannot serve the peer's last
    /// reattachment.
    LingerBelowTimeout {
        /// [`StableConfig::linger_ms`].
        linger_ms: u32,
        /// [`StableConfig::timeout_ms`].
        timeout_ms: u32,
    },
    /// A connect timeout shorter than one handshake timeout.
    ConnectTimeoutBelowTimeout {
        /// [`StableConfig::connect_timeout_ms`].
        connect_timeout_ms: u32,
        /// [`StableConfig::timeout_ms`].
        timeout_ms: u32,
    },
    /// `max_message` does not fit the storage's replay ring.
    MessageLargerThanReplay {
        /// [`StableConfig::max_message`].
        max_message: usize,
        /// The replay ring's bytes.
        replay_bytes: usize,
    },
    /// `max_message` does not fit the storage's receive ring.
    MessageLargerThanReceive {
        /// [`StableConfig::max_message`].
        max_message: usize,
        /// The receive ring's bytes.
        receive_bytes: usize,
    },
    /// The replay ring needs an entry for a message and one for the close
    /// marker.
    TooFewReplayEntries {
        /// The storage's replay entries.
        entries: usize,
    },
    /// The receive ring has no entry.
    NoReceiveEntries,
    /// The largest frame (a data frame, `max_message` plus
    /// [`MAX_HEADER`](crate::wire::MAX_HEADER), or a hello,
    /// [`MAX_CONTROL_FRAME`](crate::wire::MAX_CONTROL_FRAME), whichever is
    /// larger) does not fit the link's payload. Found when a link is attached, before anything is sent on
    /// it (or, on a link whose maximum payload is smaller than it said,
    /// when a frame does not fit).
    LinkTooSmall {
        /// Bytes the largest frame may need.
        needed: usize,
        /// The link's maximum payload.
        max_payload: usize,
    },
    /// The storage still serves an earlier session: some of its conduit
    /// halves or its driver are alive (a new session would share the
    /// storage with them), or the application holds messages it received
    /// (a new session would write over their bytes). Drop them before
    /// making a conduit on it again.
    StorageInUse {
        /// Conduit halves and driver of the earlier session alive (0 to 3).
        parts: u8,
        /// Received messages the application holds.
        messages: usize,
    },
    /// A count of an [`AcceptorConfig`](crate::AcceptorConfig) is 0.
    AcceptorFieldZero {
        /// Which one.
        field: &'static str,
    },
    /// More handshake places than an acceptor allocates.
    AcceptorPendingTooLarge {
        /// [`AcceptorConfig::pending`](crate::AcceptorConfig::pending).
        pending: usize,
        /// The most it takes.
        max: usize,
    },
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::AckEveryZero => f.write_str("ack_every must be at least 1"),
            Self::KeepaliveZero => f.write_str("keepalive_ms must be at least 1 (and below timeout_ms)"),
            Self::KeepaliveNotBelowTimeout { keepalive_ms, timeout_ms } => {
                write!(
                    f,
                    "keepalive_ms ({keepalive_ms}) must be below timeout_ms ({timeout_ms}), which must be above 0"
                )
            }
            Self::AckDelayNotBelowTimeout { ack_delay_ms, timeout_ms } => {
                write!(f, "ack_delay_ms ({ack_delay_ms}) must be below timeout_ms ({timeout_ms})")
            }
            Self::LingerBelowTimeout { linger_ms, timeout_ms } => {
                write!(f, "linger_ms ({linger_ms}) must be at least timeout_ms ({timeout_ms})")
            }
            Self::ConnectTimeoutBelowTimeout { connect_timeout_ms, timeout_ms } => {
                write!(f, "connect_timeout_ms ({connect_timeout_ms}) must be at least timeout_ms ({timeout_ms})")
            }
            Self::MessageLargerThanReplay { max_message, replay_bytes } => {
                write!(f, "max_message ({max_message}) exceeds the replay ring's {replay_bytes} bytes")
            }
            Self::MessageLargerThanReceive { max_message, receive_bytes } => {
                write!(f, "max_message ({max_message}) exceeds the receive ring's {receive_bytes} bytes")
            }
            Self::TooFewReplayEntries { entries } => {
                write!(f, "the replay ring needs at least 2 entries (a message and the close marker), not {entries}")
            }
            Self::NoReceiveEntries => f.write_str("the receive ring needs at least 1 entry"),
            Self::LinkTooSmall { needed, max_payload } => {
                write!(f, "a data frame may need {needed} bytes; the link carries at most {max_payload}")
            }
            Self::StorageInUse { parts, messages } => write!(
                f,
                "the storage still serves an earlier session ({parts} of its conduit halves and driver alive, {messages} received message(s) held); drop them first"
            ),
            Self::AcceptorFieldZero { field } => write!(f, "the acceptor's `{field}` must be at least 1"),
            Self::AcceptorPendingTooLarge { pending, max } => {
                write!(f, "the acceptor's `pending` ({pending}) must be at most {max}")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

impl Default for StableConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}
