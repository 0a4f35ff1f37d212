//! `FramedStats`: counters of a framed link, readable by the application.

/// Counters of a [`FramedLink`](crate::FramedLink) since its storage was
/// attached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FramedStats {
    /// Frames written to the byte stream.
    pub frames_sent: u32,
    /// Payload bytes in those frames.
    pub payload_bytes_sent: u64,
    /// Bytes written to the byte stream (framing included).
    pub wire_bytes_sent: u64,
    /// Good frames delivered to the receiver.
    pub frames_received: u32,
    /// Payload bytes in those frames.
    pub payload_bytes_received: u64,
    /// Bytes read from the byte stream.
    pub wire_bytes_received: u64,
    /// Frames whose CRC-32 did not match.
    pub crc_errors: u32,
    /// Frames longer than the link's maximum payload.
    pub oversize_frames: u32,
    /// Frames with bad COBS, shorter than the CRC, or cut off by the stream's end.
    pub malformed_frames: u32,
    /// Times the receiver had to discard bytes to find a frame boundary.
    pub resyncs: u32,
    /// Bytes discarded while resynchronising.
    pub discarded_bytes: u64,
    /// The application's `reserve` calls that started waiting while every
    /// receive slot held a payload it had not read (or not released): if
    /// the task that waits is also the one that reads, it waits for
    /// itself, for ever (the bare conduit's one-task stall bound). Not a
    /// stall by itself when another task reads.
    pub stalled_reserves: u32,
}

/// Adds counters of another link (or port): totals over many links, each
/// count saturating.
///
/// ```
/// use vox_link_embedded::framed::FramedStats;
///
/// let mut total = FramedStats { frames_sent: 2, crc_errors: 1, ..FramedStats::default() };
/// total += FramedStats { frames_sent: 3, ..FramedStats::default() };
/// assert_eq!((total.frames_sent, total.crc_errors), (5, 1));
/// ```
impl core::ops::AddAssign for FramedStats {
    fn add_assign(&mut self, other: Self) {
        let Self {
            frames_sent,
            payload_bytes_sent,
            wire_bytes_sent,
            frames_received,
            payload_bytes_received,
            wire_bytes_received,
            crc_errors,
            oversize_frames,
            malformed_frames,
            resyncs,
            discarded_bytes,
            stalled_reserves,
        } = other;
        self.frames_sent = self.frames_sent.saturating_add(frames_sent);
        self.payload_bytes_sent = self.payload_bytes_sent.saturating_add(payload_bytes_sent);
        self.wire_bytes_sent = self.wire_bytes_sent.saturating_add(wire_bytes_sent);
        self.frames_received = self.frames_received.saturating_add(frames_received);
        self.payload_bytes_received = self.payload_bytes_received.saturating_add(payload_bytes_received);
        self.wire_bytes_received = self.wire_bytes_received.saturating_add(wire_bytes_received);
        self.crc_errors = self.crc_errors.saturating_add(crc_errors);
        self.oversize_frames = self.oversize_frames.saturating_add(oversize_frames);
        self.malformed_frames = self.malformed_frames.saturating_add(malformed_frames);
        self.resyncs = self.resyncs.saturating_add(resyncs);
        self.discarded_bytes = self.discarded_bytes.saturating_add(discarded_bytes);
        self.stalled_reserves = self.stalled_reserves.saturating_add(stalled_reserves);
    }
}
