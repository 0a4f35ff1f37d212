//! `StableStats`: counters of a stable conduit, readable by the application.

/// Counters of a [`StableConduit`](crate::StableConduit) since it was made.
// r[impl stable.stats]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StableStats {
    /// Frames written to links (data, close, acks, hellos).
    pub frames_sent: u64,
    /// Frames read from links.
    pub frames_received: u64,
    /// Messages delivered to the application's receive queue.
    pub messages_delivered: u64,
    /// Data frames sent again after a reattachment.
    pub replays: u64,
    /// Attachments after the first.
    pub reattachments: u32,
    /// Frames that skipped a sequence number (each ended an attachment).
    pub gaps: u32,
    /// Duplicate frames dropped.
    pub duplicates: u64,
    /// Link deaths reported as CRC errors by the link below.
    pub crc_errors: u32,
    /// Attachments declared dead by the silence timeout.
    pub timeouts: u32,
    /// Ack-only frames sent (acks and keepalives).
    pub acks_sent: u64,
    /// Frames in the replay buffer now.
    pub replay_frames: u32,
    /// Message bytes in the replay buffer now.
    pub replay_bytes: u32,
    /// Most frames the replay buffer ever held.
    pub replay_frames_high: u32,
    /// Most message bytes the replay buffer ever held.
    pub replay_bytes_high: u32,
}
