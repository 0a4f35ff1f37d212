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
}

impl StableConfig {
    /// Defaults for a UART or TCP link: 200-byte messages, ack every 8
    /// frames or 20 ms, keepalive 250 ms, timeout 1 s, retry after 50 ms,
    /// linger 3 s.
    pub const DEFAULT: Self = Self {
        max_message: 200,
        ack_every: 8,
        ack_delay_ms: 20,
        keepalive_ms: 250,
        timeout_ms: 1000,
        retry_delay_ms: 50,
        linger_ms: 3000,
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
    };
}

impl Default for StableConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}
