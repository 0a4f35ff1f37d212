//! `FrameDecoder`: bytes from the stream → payloads, checked by CRC-32.
//!
//! Byte-at-a-time with the `cobs` crate's `DecoderState`, writing decoded
//! bytes straight into the caller's slot. The last four decoded bytes are
//! held back in a small delay line: when the delimiter comes they are the
//! CRC trailer, so the slot needs only the payload's room (no MTU + 4
//! arithmetic, no second buffer).

use crate::frame_crc::{CRC_LEN, FRAME_CRC};
use cobs::{DecodeResult, DecoderState};

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The CRC-32 trailer did not match.
    Crc,
    /// More payload bytes than the slot holds.
    Oversized,
    /// Bad COBS, or shorter than the CRC trailer.
    Malformed,
}

/// What one fed byte completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Nothing yet.
    Pending,
    /// A good payload of this many bytes is in the slot.
    Frame(usize),
    /// The peer's end-of-stream marker.
    Close,
}

/// Sans-I/O deframer: feed it stream bytes, it writes payload bytes into
/// the slot you give it and says when a checked frame is complete. The
/// framed link's receiver; public for tools and fuzzing.
pub struct FrameDecoder {
    state: DecoderState,
    /// Discarding until the next delimiter (a tentative first frame failed).
    syncing: bool,
    /// No delimiter seen yet: the first frame may be the tail of a frame of
    /// an earlier link. If it decodes and passes its CRC it is delivered;
    /// if not, it is discarded as a resynchronisation, not an error.
    tentative: bool,
    /// Encoded bytes of the frame in progress (for discard counts).
    frame_bytes: usize,
    /// Bytes discarded while syncing, since the last report.
    discarded: usize,
    /// Whether the current resynchronisation discarded anything.
    discarded_any: bool,
    tail: [u8; CRC_LEN],
    tail_len: usize,
    len: usize,
    in_frame: bool,
    /// Bytes since the last delimiter (or since attaching).
    run: usize,
}

/// Longest run of non-zero bytes a frame carrying at most `mtu` payload
/// bytes can have: COBS of the payload and its CRC (one code byte per 254
/// bytes, at least one). More than this without a delimiter is garbage.
pub const fn max_encoded_run(mtu: usize) -> usize {
    let n = mtu + CRC_LEN;
    n + n / 254 + 1
}

impl FrameDecoder {
    /// A decoder attached to a byte stream at an unknown position: its first
    /// frame is tentative (delivered if whole and correct, silently
    /// discarded otherwise).
    pub const fn resyncing() -> Self {
        Self {
            state: DecoderState::Idle,
            syncing: false,
            tentative: true,
            frame_bytes: 0,
            discarded: 0,
            discarded_any: false,
            tail: [0; CRC_LEN],
            tail_len: 0,
            len: 0,
            in_frame: false,
            run: 0,
        }
    }

    /// Whether a frame has started and not ended.
    pub fn in_frame(&self) -> bool {
        self.in_frame
    }

    /// True once, right after a resynchronisation that discarded bytes.
    pub fn resynced_after_discard(&mut self) -> bool {
        !self.syncing && !self.tentative && core::mem::take(&mut self.discarded_any)
    }

    /// Bytes discarded while resynchronising; resets the count.
    pub fn take_discarded(&mut self) -> usize {
        core::mem::take(&mut self.discarded)
    }

    fn reset(&mut self) {
        self.state = DecoderState::Idle;
        self.tail_len = 0;
        self.len = 0;
        self.in_frame = false;
    }

    /// Feeds one byte; decoded payload bytes go to `slot` (the payload's
    /// room: at most the link's MTU).
    ///
    /// More than [`max_encoded_run`] bytes without a delimiter is
    /// [`FrameError::Oversized`], also before the first delimiter (while
    /// resynchronising): a peer cannot keep a link busy with garbage.
    // r[impl framed.garbage-bound]
    pub fn feed(&mut self, byte: u8, slot: &mut [u8]) -> Result<Decoded, FrameError> {
        if byte == 0 {
            self.run = 0;
        } else {
            self.run += 1;
            if self.run > max_encoded_run(slot.len()) {
                self.run = 0;
                self.reset();
                self.frame_bytes = 0;
                self.tentative = false;
                self.syncing = true;
                return Err(FrameError::Oversized);
            }
        }
        if self.syncing {
            if byte == 0 {
                self.syncing = false;
                self.tentative = false;
            } else {
                self.discarded += 1;
                self.discarded_any = true;
            }
            return Ok(Decoded::Pending);
        }
        self.frame_bytes += 1;
        let result = self.feed_synced(byte, slot);
        if byte == 0 {
            let was_tentative = core::mem::replace(&mut self.tentative, false);
            let discarded = self.frame_bytes - 1;
            self.frame_bytes = 0;
            if was_tentative {
                return match result {
                    Ok(Decoded::Frame(n)) => Ok(Decoded::Frame(n)),
                    // A lone delimiter: the stream was at a boundary.
                    Ok(Decoded::Pending) => Ok(Decoded::Pending),
                    // The tail of an earlier frame (or a marker we cannot
                    // trust): drop it quietly.
                    Ok(Decoded::Close) | Err(_) => {
                        self.discarded += discarded;
                        self.discarded_any = true;
                        Ok(Decoded::Pending)
                    }
                };
            }
        } else if self.tentative && result.is_err() {
            // Not a frame start after all: skip to the next delimiter.
            self.discarded += self.frame_bytes;
            self.discarded_any = true;
            self.frame_bytes = 0;
            self.syncing = true;
            return Ok(Decoded::Pending);
        }
        result
    }

    fn feed_synced(&mut self, byte: u8, slot: &mut [u8]) -> Result<Decoded, FrameError> {
        match self.state.feed(byte) {
            Ok(DecodeResult::NoData) => Ok(Decoded::Pending),
            Ok(DecodeResult::DataStart) => {
                self.reset_frame();
                Ok(Decoded::Pending)
            }
            Ok(DecodeResult::DataContinue(b)) => self.push(b, slot),
            Ok(DecodeResult::DataComplete) => self.complete(slot),
            Err(_) => self.fail(FrameError::Malformed, byte),
        }
    }

    fn reset_frame(&mut self) {
        self.tail_len = 0;
        self.len = 0;
        self.in_frame = true;
    }

    fn push(&mut self, b: u8, slot: &mut [u8]) -> Result<Decoded, FrameError> {
        if self.tail_len < CRC_LEN {
            if let Some(t) = self.tail.get_mut(self.tail_len) {
                *t = b;
            }
            self.tail_len += 1;
            return Ok(Decoded::Pending);
        }
        let [oldest, a, b2, c] = self.tail;
        self.tail = [a, b2, c, b];
        match slot.get_mut(self.len) {
            Some(dst) => {
                *dst = oldest;
                self.len += 1;
                Ok(Decoded::Pending)
            }
            None => self.fail(FrameError::Oversized, 1),
        }
    }

    fn complete(&mut self, slot: &[u8]) -> Result<Decoded, FrameError> {
        let (len, tail_len, tail) = (self.len, self.tail_len, self.tail);
        self.reset();
        if len == 0 && tail_len == 0 {
            return Ok(Decoded::Close);
        }
        if tail_len < CRC_LEN {
            return Err(FrameError::Malformed);
        }
        let payload = slot.get(..len).ok_or(FrameError::Oversized)?;
        if FRAME_CRC.checksum(payload) != u32::from_le_bytes(tail) {
            return Err(FrameError::Crc);
        }
        Ok(Decoded::Frame(len))
    }

    /// Drops the frame in progress; the decoder resynchronises at the next
    /// delimiter (the byte just fed is that delimiter when it is 0).
    fn fail(&mut self, e: FrameError, byte: u8) -> Result<Decoded, FrameError> {
        self.reset();
        self.syncing = byte != 0 && !self.tentative;
        Err(e)
    }
}
