//! `FrameEncoder`: payload → `COBS(payload ‖ CRC-32 LE) ‖ 0x00`, streamed
//! into a fixed output buffer, so no buffer grows with the MTU.
//!
//! The COBS state machine is the `cobs` crate's `EncoderState`; this file
//! only manages its back-patched output in a bounded buffer. A COBS block is
//! at most 255 bytes, so with [`ENCODE_BUF`] bytes there is always a
//! finished block to flush before the buffer fills.

use crate::frame_crc::{CRC_LEN, FRAME_CRC};
use cobs::{EncoderState, PushResult};

/// Size of the encoder's output buffer: two COBS blocks and some room.
pub(crate) const ENCODE_BUF: usize = 512;

/// Streams frames into an output buffer; the caller writes out what
/// [`pending`](Self::pending) returns whenever [`needs_flush`](Self::needs_flush).
pub(crate) struct FrameEncoder {
    buf: [u8; ENCODE_BUF],
    /// Bytes in `buf`.
    len: usize,
    /// Bytes of `buf` that are final (may be written out).
    done: usize,
    /// Encoded bytes of the current frame already moved out of `buf`.
    frame_out: usize,
    /// Offset in `buf` of the current frame's first encoded byte, if it
    /// started in this buffer.
    frame_base: usize,
    state: Option<EncoderState>,
    /// The last byte pushed completed a full 254-byte block; if the frame
    /// ends here, the trailing placeholder is dropped (as `cobs::encode`
    /// does) rather than written as a redundant `0x01`.
    after_full_block: bool,
    /// CRC trailer of the current frame.
    crc: [u8; CRC_LEN],
    /// Bytes of `payload ‖ crc` of the current frame fed so far.
    fed: usize,
}

impl FrameEncoder {
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; ENCODE_BUF],
            len: 0,
            done: 0,
            frame_out: 0,
            frame_base: 0,
            state: None,
            after_full_block: false,
            crc: [0; CRC_LEN],
            fed: 0,
        }
    }

    /// Appends one raw byte (a delimiter) outside any frame.
    pub(crate) fn push_delimiter(&mut self) {
        self.push_raw(0);
        self.done = self.len;
    }

    /// Appends the close marker (`01 00`: an empty COBS frame).
    pub(crate) fn push_close_marker(&mut self) {
        self.push_raw(1);
        self.push_raw(0);
        self.done = self.len;
    }

    /// Whether [`pending`](Self::pending) must be written out before the
    /// next [`feed`](Self::feed) step can proceed.
    pub(crate) fn needs_flush(&self) -> bool {
        self.len + 3 > ENCODE_BUF
    }

    /// Final bytes ready to be written out.
    pub(crate) fn pending(&self) -> &[u8] {
        self.buf.get(..self.done).unwrap_or(&[])
    }

    /// Marks [`pending`](Self::pending) as written.
    pub(crate) fn consumed(&mut self) {
        let done = self.done;
        // The tail is at most one frame's unfinished block: a byte loop
        // moves it. (`copy_within` links `memmove`, 1.5 KB on a Cortex-M,
        // for this one call.)
        for i in 0..self.len - done {
            if let Some(b) = self.buf.get(done + i).copied()
                && let Some(d) = self.buf.get_mut(i)
            {
                *d = b;
            }
        }
        self.len -= done;
        if done >= self.frame_base {
            self.frame_out += done - self.frame_base;
            self.frame_base = 0;
        } else {
            self.frame_base -= done;
        }
        self.done = 0;
    }

    /// Starts the frame carrying `payload` (its CRC is computed here).
    pub(crate) fn begin(&mut self, payload: &[u8]) {
        self.crc = FRAME_CRC.checksum(payload).to_le_bytes();
        self.fed = 0;
        self.frame_base = self.len;
        self.frame_out = 0;
        self.after_full_block = false;
        self.state = Some(EncoderState::default());
        self.push_raw(0); // placeholder for the first code byte
    }

    /// Encodes the current frame (`payload` as given to [`begin`](Self::begin))
    /// and ends it. Returns `false` when [`pending`](Self::pending) must be
    /// written out first; call again after that, with the same payload.
    pub(crate) fn feed_frame(&mut self, payload: &[u8]) -> bool {
        let crc = self.crc;
        loop {
            if self.needs_flush() {
                return false;
            }
            let rest = match self.fed.checked_sub(payload.len()) {
                None => payload.get(self.fed..).unwrap_or(&[]),
                Some(in_crc) => crc.get(in_crc..).unwrap_or(&[]),
            };
            if rest.is_empty() {
                self.end();
                return true;
            }
            self.fed += self.feed(rest);
        }
    }

    /// Encodes `data` of the current frame until done or the buffer needs
    /// a flush; returns how many bytes of `data` were consumed.
    fn feed(&mut self, data: &[u8]) -> usize {
        let mut used = 0;
        for &b in data {
            if self.needs_flush() {
                break;
            }
            let Some(state) = self.state.as_mut() else { break };
            let result = state.push(b);
            self.after_full_block = matches!(result, PushResult::ModifyFromStartAndPushAndSkip(_));
            match result {
                PushResult::AddSingle(x) => self.push_raw(x),
                PushResult::ModifyFromStartAndSkip((idx, code)) => {
                    self.patch(idx, code);
                    self.push_raw(0);
                }
                PushResult::ModifyFromStartAndPushAndSkip((idx, code, x)) => {
                    self.patch(idx, code);
                    self.push_raw(x);
                    self.push_raw(0);
                }
            }
            used += 1;
        }
        used
    }

    /// Ends the current frame: patches its last code byte and appends the
    /// delimiter.
    fn end(&mut self) {
        if let Some(state) = self.state.take() {
            if core::mem::take(&mut self.after_full_block) {
                // The placeholder just pushed is the last byte; drop it.
                self.len -= 1;
            } else {
                let (idx, code) = state.finalize();
                self.patch(idx, code);
            }
            self.push_raw(0);
        }
        self.done = self.len;
    }

    fn push_raw(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// Writes `code` at encoded offset `idx` of the current frame. Every
    /// byte before a new placeholder is final, so `done` moves up to it.
    fn patch(&mut self, idx: usize, code: u8) {
        let at = (self.frame_base + idx).wrapping_sub(self.frame_out);
        if let Some(slot) = self.buf.get_mut(at) {
            *slot = code;
        }
        // Bytes before the placeholder about to be pushed are final.
        self.done = self.len;
    }
}

// r[impl framed.overhead]
/// Encodes `payload` as one frame into `out` (for tests and tools);
/// returns the frame length, delimiter included, or `None` if `out` is too
/// small.
pub fn encode_frame(payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut enc = FrameEncoder::new();
    let mut written = 0;
    enc.begin(payload);
    loop {
        let done = enc.feed_frame(payload);
        let p = enc.pending();
        out.get_mut(written..written + p.len())?.copy_from_slice(p);
        written += p.len();
        enc.consumed();
        if done {
            return Some(written);
        }
    }
}
