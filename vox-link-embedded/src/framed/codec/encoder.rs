//! `FrameEncoder`: payload → `COBS(payload ‖ CRC-32 LE) ‖ 0x00`, into a
//! fixed buffer of any size.
//!
//! A block is a code byte and up to 254 non-zero bytes. The payload is all
//! in memory (a link slot), so a block's length is found by looking ahead
//! and its code byte is written first; its data then follows in as many
//! pieces as the buffer needs. Hosts (feature `fast-codec`) look ahead with
//! one zero search and copy runs; MCU builds scan and copy a byte at a time,
//! the smallest code (a test checks both write the same bytes). Nothing is patched
//! afterwards: every byte in the buffer is final, and a buffer far smaller
//! than a block (a UART's few dozen bytes) serves any frame. COBS is
//! written here rather than with the `cobs` crate because its encoder
//! works a byte at a time into an output that holds the whole frame.

#[cfg(any(test, feature = "fast-codec"))]
use super::kernels::find_zero;
use super::kernels::{CRC_LEN, crc32};

/// Data bytes in a full COBS block (code `0xFF`).
const FULL_BLOCK: usize = 254;

/// Smallest buffer the encoder works with: the close marker's two bytes.
pub(crate) const MIN_ENCODE_BUF: usize = 2;

/// Where the encoder is in the current frame; works on any buffer, so one
/// copy of the code serves every buffer size.
#[derive(Clone, Copy)]
struct Cursor {
    /// Bytes in the buffer.
    len: usize,
    /// A block must follow even if no data does (the frame just began, or
    /// the last block ended at a zero). The run encoder's; the byte encoder
    /// knows it from `zero_after`.
    block_owed: bool,
    /// Data bytes of the current block still to copy (its code byte is
    /// written).
    block_left: usize,
    /// The current block ends at a zero of the input, skipped once its
    /// data is copied (by the byte encoder: when the next block begins).
    zero_after: bool,
    /// CRC trailer of the current frame.
    crc: [u8; CRC_LEN],
    /// Bytes of `payload ‖ crc` consumed so far.
    fed: usize,
}

impl Cursor {
    const fn new() -> Self {
        Self { len: 0, block_owed: false, block_left: 0, zero_after: false, crc: [0; CRC_LEN], fed: 0 }
    }

    fn begin(&mut self, payload: &[u8]) {
        self.crc = crc32(payload).to_le_bytes();
        self.fed = 0;
        self.block_owed = true;
        self.block_left = 0;
        self.zero_after = false;
    }

    fn push(&mut self, buf: &mut [u8], b: u8) {
        if let Some(slot) = buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    #[cfg(any(test, feature = "fast-codec"))]
    fn append(&mut self, buf: &mut [u8], data: &[u8]) {
        if let Some(dst) = buf.get_mut(self.len..self.len + data.len()) {
            dst.copy_from_slice(data);
            self.len += data.len();
        }
    }

    /// Encodes the rest of the frame into `buf`; `false` when `buf` is full
    /// first (then every byte in it is final: write it out and call
    /// again).
    fn feed(&mut self, buf: &mut [u8], payload: &[u8]) -> bool {
        #[cfg(not(feature = "fast-codec"))]
        return self.feed_bytes(buf, payload);
        #[cfg(feature = "fast-codec")]
        self.feed_runs(buf, payload)
    }

    /// [`feed`](Self::feed) a byte at a time: the smallest code (MCU
    /// builds).
    #[cfg(any(test, not(feature = "fast-codec")))]
    pub(super) fn feed_bytes(&mut self, buf: &mut [u8], payload: &[u8]) -> bool {
        let crc = self.crc;
        // Byte `i` of `payload ‖ crc` (past the payload, `i >= len`: no wrap).
        let at = |i: usize| payload.get(i).or_else(|| crc.get(i.wrapping_sub(payload.len()))).copied();
        while self.len < buf.len() {
            if self.block_left > 0 {
                self.push(buf, at(self.fed).unwrap_or(0));
                self.fed += 1;
                self.block_left -= 1;
                continue;
            }
            // A block ended at a zero: skip it, and another block follows
            // even if no data does.
            let owed = core::mem::take(&mut self.zero_after);
            self.fed += usize::from(owed);
            if !owed && at(self.fed).is_none() {
                self.push(buf, 0);
                return true;
            }
            // The next block: up to 254 bytes before a zero.
            let mut data = 0;
            while data < FULL_BLOCK && at(self.fed + data).is_some_and(|b| b != 0) {
                data += 1;
            }
            self.zero_after = data < FULL_BLOCK && at(self.fed + data).is_some();
            // 255 (`0xFF`) for a full block, which implies no zero.
            self.push(buf, data as u8 + 1);
            self.block_left = data;
        }
        false
    }

    /// [`feed`](Self::feed) a run at a time: the fastest (hosts).
    #[cfg(any(test, feature = "fast-codec"))]
    pub(super) fn feed_runs(&mut self, buf: &mut [u8], payload: &[u8]) -> bool {
        let crc = self.crc;
        // The rest of the input (`payload ‖ crc` from `fed` on) as its two
        // parts.
        let rest = |fed: usize| match fed.checked_sub(payload.len()) {
            None => (payload.get(fed..).unwrap_or(&[]), &crc[..]),
            Some(in_crc) => (&[][..], crc.get(in_crc..).unwrap_or(&[])),
        };
        loop {
            let room = buf.len().saturating_sub(self.len);
            if self.block_left > 0 {
                // The current block's data, as much as fits.
                let n = room.min(self.block_left);
                let (p, c) = rest(self.fed);
                let from_p = n.min(p.len());
                let (p, c) = (p.get(..from_p).unwrap_or(&[]), c.get(..n - from_p).unwrap_or(&[]));
                self.append(buf, p);
                self.append(buf, c);
                self.fed += n;
                self.block_left -= n;
                if self.block_left > 0 {
                    return false;
                }
                self.fed += usize::from(self.zero_after);
                continue;
            }
            if room == 0 {
                return false;
            }
            let (p, c) = rest(self.fed);
            if p.is_empty() && c.is_empty() && !self.block_owed {
                self.push(buf, 0);
                return true;
            }
            // The next block: up to 254 bytes before a zero, over both parts.
            let p = p.get(..FULL_BLOCK.min(p.len())).unwrap_or(&[]);
            let (data, zero) = match find_zero(p) {
                Some(z) => (z, true),
                None => {
                    let c = c.get(..(FULL_BLOCK - p.len()).min(c.len())).unwrap_or(&[]);
                    match find_zero(c) {
                        Some(z) => (p.len() + z, true),
                        None => (p.len() + c.len(), false),
                    }
                }
            };
            // 255 (`0xFF`) for a full block, which implies no zero.
            self.push(buf, data as u8 + 1);
            self.block_owed = zero;
            self.zero_after = zero;
            self.block_left = data;
            if data == 0 {
                self.fed += usize::from(zero);
            }
        }
    }
}

/// Encodes frames into an output buffer of `N` bytes; the caller writes out
/// what [`pending`](Self::pending) returns whenever
/// [`feed_frame`](Self::feed_frame) asks.
pub(crate) struct FrameEncoder<const N: usize> {
    buf: [u8; N],
    cursor: Cursor,
}

impl<const N: usize> FrameEncoder<N> {
    const BIG_ENOUGH: () = assert!(N >= MIN_ENCODE_BUF, "encoder buffer too small for the close marker");

    pub(crate) const fn new() -> Self {
        let () = Self::BIG_ENOUGH;
        Self { buf: [0; N], cursor: Cursor::new() }
    }

    /// Appends one delimiter; call with the buffer written out.
    pub(crate) fn push_delimiter(&mut self) {
        self.cursor.push(&mut self.buf, 0);
    }

    /// Appends the close marker (`01 00`: an empty COBS frame); call with
    /// the buffer written out.
    pub(crate) fn push_close_marker(&mut self) {
        self.cursor.push(&mut self.buf, 1);
        self.cursor.push(&mut self.buf, 0);
    }

    /// Bytes ready to be written out: all of the buffer (every byte in it
    /// is final).
    pub(crate) fn pending(&self) -> &[u8] {
        self.buf.get(..self.cursor.len).unwrap_or(&[])
    }

    /// Marks [`pending`](Self::pending) as written.
    pub(crate) fn consumed(&mut self) {
        self.cursor.len = 0;
    }

    /// Starts the frame carrying `payload` (its CRC is computed here).
    pub(crate) fn begin(&mut self, payload: &[u8]) {
        self.cursor.begin(payload);
    }

    /// Encodes the current frame (`payload` as given to [`begin`](Self::begin))
    /// and ends it. Returns `false` when [`pending`](Self::pending) must be
    /// written out first; call again after that, with the same payload.
    pub(crate) fn feed_frame(&mut self, payload: &[u8]) -> bool {
        self.cursor.feed(&mut self.buf, payload)
    }

    /// [`feed_frame`](Self::feed_frame) with the byte-at-a-time encoder.
    #[cfg(test)]
    pub(super) fn feed_bytes(&mut self, payload: &[u8]) -> bool {
        self.cursor.feed_bytes(&mut self.buf, payload)
    }

    /// [`feed_frame`](Self::feed_frame) with the run-at-a-time encoder.
    #[cfg(test)]
    pub(super) fn feed_runs(&mut self, payload: &[u8]) -> bool {
        self.cursor.feed_runs(&mut self.buf, payload)
    }
}

// r[impl framed.overhead]
/// Encodes `payload` as one frame into `out`; returns the frame length,
/// delimiter included, or `None` if `out` is too small. For tools, tests
/// and peers that frame without a runner.
///
/// ```
/// use vox_link_embedded::framed::codec::encode_frame;
/// let mut out = [0u8; 16];
/// let n = encode_frame(b"hi", &mut out).unwrap();
/// assert_eq!(out[n - 1], 0); // the delimiter
/// assert!(out[..n - 1].iter().all(|&b| b != 0));
/// ```
pub fn encode_frame(payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut cursor = Cursor::new();
    cursor.begin(payload);
    cursor.feed(out, payload).then_some(cursor.len)
}
