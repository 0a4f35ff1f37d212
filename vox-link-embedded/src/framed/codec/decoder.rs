//! `FrameDecoder`: stream bytes → payloads, checked by CRC-32.
//!
//! Hosts (feature `fast-codec`) decode whole runs: the bytes of a COBS
//! block are found with one zero search and copied with one slice copy,
//! straight into the caller's slot. MCU builds decode a byte at a time, the
//! smallest code (a quarter of a kilobyte less flash on a Cortex-M3; the
//! table-less CRC costs more per byte anyway); a test checks that both give
//! the same outcomes. Either way the CRC is computed once, over the
//! finished payload, and the slot needs only the payload's room: the last
//! four decoded bytes (the CRC trailer) are also kept in a register, and
//! bytes past the slot's end go only there.

#[cfg(any(test, feature = "fast-codec"))]
use super::kernels::find_zero;
use super::kernels::{CRC_LEN, crc32};

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The CRC-32 trailer did not match.
    Crc,
    /// More payload bytes than the slot holds, or more bytes without a
    /// delimiter than the longest legal frame.
    Oversized,
    /// Bad COBS, or shorter than the CRC trailer.
    Malformed,
}

/// What the bytes fed so far completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Nothing yet.
    Pending,
    /// A good payload of this many bytes is in the slot.
    Frame(usize),
    /// The peer's end-of-stream marker.
    Close,
}

/// Longest run of non-zero bytes a frame carrying at most `mtu` payload
/// bytes can have: COBS of the payload and its CRC (one code byte per 254
/// bytes, at least one). More than this without a delimiter is garbage.
pub const fn max_encoded_run(mtu: usize) -> usize {
    let n = mtu + CRC_LEN;
    n + n / 254 + 1
}

/// Sans-I/O deframer: feed it stream bytes, it writes payload bytes into
/// the slot you give it and says when a checked frame is complete. The
/// framed link's receiver; public for tools, other runners and fuzzing.
///
/// ```
/// use vox_link_embedded::framed::codec::{Decoded, FrameDecoder, encode_frame};
/// let mut wire = [0u8; 16];
/// let n = encode_frame(b"hi", &mut wire).unwrap();
/// let mut decoder = FrameDecoder::resyncing();
/// let mut slot = [0u8; 8];
/// // A delimiter first: a fresh decoder skips to one before trusting data.
/// assert_eq!(decoder.decode(&[0], &mut slot), (1, Ok(Decoded::Pending)));
/// assert_eq!(decoder.decode(&wire[..n], &mut slot), (n, Ok(Decoded::Frame(2))));
/// assert_eq!(&slot[..2], b"hi");
/// ```
pub struct FrameDecoder {
    /// Data bytes left in the current COBS block; 0: a code byte is next.
    block_left: usize,
    /// The current block's code was below `0xFF`: a zero is implied before
    /// the next block (dropped if the frame ends instead).
    zero_owed: bool,
    /// A code byte was seen since the last delimiter.
    in_frame: bool,
    /// Decoded bytes of the frame so far (payload and CRC).
    len: usize,
    /// The last four decoded bytes, as a little-endian `u32`: the CRC
    /// trailer when the frame ends.
    tail: u32,
    /// Discarding until the next delimiter (a tentative first frame failed,
    /// or an error).
    syncing: bool,
    /// No delimiter seen yet: the first frame may be the tail of a frame of
    /// an earlier link. If it decodes and passes its CRC it is delivered;
    /// if not, it is discarded as a resynchronisation, not an error.
    tentative: bool,
    /// Bytes discarded while syncing, since the last report.
    discarded: usize,
    /// Whether the current resynchronisation discarded anything.
    discarded_any: bool,
    /// Non-zero bytes since the last delimiter (or since attaching).
    run: usize,
}

impl FrameDecoder {
    /// A decoder attached to a byte stream at an unknown position: its first
    /// frame is tentative (delivered if whole and correct, silently
    /// discarded otherwise).
    pub const fn resyncing() -> Self {
        Self {
            block_left: 0,
            zero_owed: false,
            in_frame: false,
            len: 0,
            tail: 0,
            syncing: false,
            tentative: true,
            discarded: 0,
            discarded_any: false,
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

    /// Feeds one byte: `decode(&[byte], slot)`'s result.
    pub fn feed(&mut self, byte: u8, slot: &mut [u8]) -> Result<Decoded, FrameError> {
        self.decode(&[byte], slot).1
    }

    /// Decodes `input` until it is used up or a frame (or the close marker,
    /// or an error) completes; returns how many bytes were used and what
    /// they completed. Payload bytes go to `slot` (the payload's room: at
    /// most the link's MTU); pass the same slot until a frame completes.
    ///
    /// More than [`max_encoded_run`] bytes without a delimiter is
    /// [`FrameError::Oversized`], also before the first delimiter (while
    /// resynchronising): a peer cannot keep a link busy with garbage. After
    /// an error the decoder discards bytes up to the next delimiter.
    // r[impl framed.garbage-bound]
    // Not inlined: one copy serves every runner, and it is smaller on a
    // Cortex-M3 than inlined into the runner.
    #[inline(never)]
    pub fn decode(&mut self, input: &[u8], slot: &mut [u8]) -> (usize, Result<Decoded, FrameError>) {
        #[cfg(not(feature = "fast-codec"))]
        return self.decode_bytes(input, slot);
        #[cfg(feature = "fast-codec")]
        self.decode_runs(input, slot)
    }

    /// [`decode`](Self::decode) a byte at a time: the smallest code (MCU
    /// builds).
    #[cfg(any(test, not(feature = "fast-codec")))]
    pub(super) fn decode_bytes(&mut self, input: &[u8], slot: &mut [u8]) -> (usize, Result<Decoded, FrameError>) {
        let mut used = 0;
        for &b in input {
            used += 1;
            match self.step(b, slot) {
                Ok(Decoded::Pending) => {}
                done => return (used, done),
            }
        }
        (used, Ok(Decoded::Pending))
    }

    /// Decodes one byte. Not inlined into the loop: kept apart, the
    /// decoder's fields stay in memory instead of being juggled through
    /// registers (about 400 bytes smaller on a Cortex-M3).
    #[cfg(any(test, not(feature = "fast-codec")))]
    #[inline(never)]
    fn step(&mut self, b: u8, slot: &mut [u8]) -> Result<Decoded, FrameError> {
        if b == 0 {
            let frame_bytes = core::mem::take(&mut self.run);
            return self.end_frame(frame_bytes, slot);
        }
        if self.run >= max_encoded_run(slot.len()) {
            return self.garbage();
        }
        self.run += 1;
        if self.syncing {
            self.discarded += 1;
            self.discarded_any = true;
            return Ok(Decoded::Pending);
        }
        let data = if self.block_left == 0 {
            // A code byte: after a block it stands for the zero that ended
            // it. (`&`, not `&&`: one path fewer, smaller code.)
            let owed = self.in_frame & self.zero_owed;
            self.in_frame = true;
            self.block_left = usize::from(b) - 1;
            self.zero_owed = b != 0xFF;
            if !owed {
                return Ok(Decoded::Pending);
            }
            0
        } else {
            self.block_left -= 1;
            b
        };
        if self.len >= slot.len() + CRC_LEN {
            // (Resets the block state just set.)
            return self.fail_mid_frame();
        }
        if let Some(dst) = slot.get_mut(self.len) {
            *dst = data;
        }
        self.tail = (self.tail >> 8) | (u32::from(data) << 24);
        self.len += 1;
        Ok(Decoded::Pending)
    }

    /// [`decode`](Self::decode) a run at a time: the fastest (hosts).
    #[cfg(any(test, feature = "fast-codec"))]
    pub(super) fn decode_runs(&mut self, input: &[u8], slot: &mut [u8]) -> (usize, Result<Decoded, FrameError>) {
        let bound = max_encoded_run(slot.len());
        let mut used = 0;
        while let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) {
            // The bytes up to the next delimiter that are one step: skipped
            // garbage, one code byte, or data bytes of the current block.
            let code = !self.syncing && self.block_left == 0;
            let step = match () {
                _ if self.syncing => rest.len(),
                _ if code => 1,
                _ => self.block_left,
            };
            let window = rest.get(..step.min(rest.len())).unwrap_or(&[]);
            let stretch = find_zero(window).unwrap_or(window.len());
            if stretch == 0 {
                // A delimiter.
                used += 1;
                let frame_bytes = core::mem::take(&mut self.run);
                match self.end_frame(frame_bytes, slot) {
                    Ok(Decoded::Pending) => continue,
                    done => return (used, done),
                }
            }
            // Decoded bytes this step writes: the data, or the zero a code
            // byte implies when it follows a block.
            let decodes = match () {
                _ if self.syncing => 0,
                _ if code => usize::from(self.in_frame && self.zero_owed),
                _ => stretch,
            };
            // Offsets in the step of the byte that crosses the garbage bound
            // and of the byte that overflows the slot (a code byte's own).
            let garbage_at = bound.saturating_sub(self.run);
            let overflow_at = (slot.len() + CRC_LEN).saturating_sub(self.len);
            let overflows = decodes > overflow_at;
            if stretch > garbage_at && (!overflows || garbage_at <= overflow_at) {
                if self.syncing && garbage_at > 0 {
                    // Skipped before the byte that crossed the bound.
                    self.discarded += garbage_at;
                    self.discarded_any = true;
                }
                return (used + garbage_at + 1, self.garbage());
            }
            if overflows {
                self.run += overflow_at + 1;
                used += overflow_at + 1;
                match self.fail_mid_frame() {
                    Ok(_) => continue,
                    e => return (used, e),
                }
            }
            let bytes = window.get(..stretch).unwrap_or(&[]);
            self.run += stretch;
            used += stretch;
            if self.syncing {
                self.discarded += stretch;
                self.discarded_any = true;
            } else if code {
                if decodes > 0 {
                    self.put(&[0], slot);
                }
                self.in_frame = true;
                let code = bytes.first().copied().unwrap_or(1);
                self.block_left = usize::from(code).saturating_sub(1);
                self.zero_owed = code != 0xFF;
            } else {
                self.put(bytes, slot);
                self.block_left -= stretch;
            }
        }
        (used, Ok(Decoded::Pending))
    }

    /// Writes decoded bytes at `len`: what fits into the slot, and the last
    /// four into `tail` (the caller checked the frame stays within the
    /// slot and a CRC trailer).
    #[cfg(any(test, feature = "fast-codec"))]
    fn put(&mut self, data: &[u8], slot: &mut [u8]) {
        let n = slot.len().saturating_sub(self.len).min(data.len());
        if let (Some(dst), Some(src)) = (slot.get_mut(self.len..self.len + n), data.get(..n)) {
            dst.copy_from_slice(src);
        }
        for &b in data.get(data.len().saturating_sub(CRC_LEN)..).unwrap_or(&[]) {
            self.tail = (self.tail >> 8) | (u32::from(b) << 24);
        }
        self.len += data.len();
    }

    fn reset(&mut self) {
        self.block_left = 0;
        self.zero_owed = false;
        self.in_frame = false;
        self.len = 0;
    }

    /// A delimiter after `frame_bytes` others: ends the frame in
    /// progress, if any.
    fn end_frame(&mut self, frame_bytes: usize, slot: &[u8]) -> Result<Decoded, FrameError> {
        if core::mem::take(&mut self.syncing) {
            self.tentative = false;
            return Ok(Decoded::Pending);
        }
        // Reset first: one reset for every outcome (smaller code).
        let (in_frame, block_left, len) = (self.in_frame, self.block_left, self.len);
        self.reset();
        let result = if !in_frame {
            Ok(Decoded::Pending)
        } else if block_left > 0 {
            Err(FrameError::Malformed)
        } else {
            self.complete(len, slot)
        };
        if core::mem::replace(&mut self.tentative, false) && matches!(result, Ok(Decoded::Close) | Err(_)) {
            // The tail of an earlier frame (or a marker we cannot trust):
            // drop it quietly.
            self.discarded += frame_bytes;
            self.discarded_any = true;
            return Ok(Decoded::Pending);
        }
        result
    }

    /// Checks the frame of `len` decoded bytes that just ended.
    fn complete(&self, len: usize, slot: &[u8]) -> Result<Decoded, FrameError> {
        let Some(payload_len) = len.checked_sub(CRC_LEN) else {
            // `01 00`: an empty frame is the close marker.
            return if len == 0 { Ok(Decoded::Close) } else { Err(FrameError::Malformed) };
        };
        let payload = slot.get(..payload_len).ok_or(FrameError::Oversized)?;
        if crc32(payload) != self.tail {
            return Err(FrameError::Crc);
        }
        Ok(Decoded::Frame(payload_len))
    }

    /// More bytes without a delimiter than any legal frame has.
    fn garbage(&mut self) -> Result<Decoded, FrameError> {
        self.run = 0;
        self.reset();
        self.tentative = false;
        self.syncing = true;
        Err(FrameError::Oversized)
    }

    /// The frame outgrew the slot (the byte doing it is counted in `run`):
    /// an error, or while tentative a quiet resync (`Ok(Pending)`: decoding
    /// goes on).
    fn fail_mid_frame(&mut self) -> Result<Decoded, FrameError> {
        self.reset();
        self.syncing = true;
        if self.tentative {
            // Every byte since the delimiter was this frame's; from here on
            // they count as they are skipped.
            self.discarded += self.run;
            self.discarded_any = true;
            return Ok(Decoded::Pending);
        }
        Err(FrameError::Oversized)
    }
}
