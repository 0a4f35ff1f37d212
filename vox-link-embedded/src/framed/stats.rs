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
}
