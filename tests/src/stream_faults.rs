//! Byte-stream fault injectors for framed-link tests.

use embedded_io_async::{ErrorType, Write};

/// Passes bytes through, but corrupts one byte of the frame that follows
/// the first `frames` frames (the sender's leading sync delimiter is not a
/// frame), so the receiver gets exactly `frames` good payloads, then an
/// error.
pub struct CorruptAfterFrames<W> {
    inner: W,
    delimiters_left: u32,
    since_delimiter: usize,
    done: bool,
}

impl<W> CorruptAfterFrames<W> {
    /// Corrupts the frame after `frames` good ones; `None` never corrupts.
    pub fn new(inner: W, frames: Option<u32>) -> Self {
        Self { inner, delimiters_left: frames.map_or(u32::MAX, |n| n + 1), since_delimiter: 0, done: frames.is_none() }
    }
}

impl<W: ErrorType> ErrorType for CorruptAfterFrames<W> {
    type Error = W::Error;
}

impl<W: Write> Write for CorruptAfterFrames<W> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        let mut out = buf.to_vec();
        for b in out.iter_mut() {
            if *b == 0 {
                self.delimiters_left = self.delimiters_left.saturating_sub(1);
                self.since_delimiter = 0;
                continue;
            }
            self.since_delimiter += 1;
            if !self.done && self.delimiters_left == 0 && self.since_delimiter == 2 {
                // Any other non-zero value: keeps the framing, breaks the CRC.
                *b = if *b ^ 0x40 != 0 { *b ^ 0x40 } else { 0x41 };
                self.done = true;
            }
        }
        self.inner.write_all(&out).await?;
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), W::Error> {
        self.inner.flush().await
    }
}
