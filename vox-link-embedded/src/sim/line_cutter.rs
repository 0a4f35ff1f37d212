//! `LineCutter`: wraps a byte-stream writer and loses a burst of bytes
//! about every N frames, as a cable pulled and pushed back would: the
//! frames it cuts fail their CRC or vanish, and the link on top dies.

use embedded_io_async::{ErrorType, Write};

/// A writer that drops `burst` bytes after every `every`-th frame
/// delimiter (`0x00`) that passes through it; deterministic (by byte
/// position only).
///
/// ```
/// # futures::executor::block_on(async {
/// use embedded_io_async::Write;
/// use vox_link_embedded::sim::LineCutter;
///
/// let mut out = [0u8; 16];
/// let mut line = LineCutter::new(&mut out[..], 2, 3);
/// line.write_all(&[1, 0, 2, 0, 3, 4, 5, 6, 0]).await.unwrap();
/// // After the second delimiter, three bytes are lost.
/// assert_eq!(line.cuts(), 1);
/// assert_eq!(out[..6], [1, 0, 2, 0, 6, 0]);
/// # });
/// ```
pub struct LineCutter<W> {
    inner: W,
    every: u32,
    burst: u32,
    frames: u32,
    cutting: u32,
    cuts: u32,
}

impl<W> LineCutter<W> {
    /// Cuts `burst` bytes after every `every` frames written to `inner`;
    /// `every == 0` never cuts.
    pub fn new(inner: W, every: u32, burst: u32) -> Self {
        Self { inner, every, burst, frames: 0, cutting: 0, cuts: 0 }
    }

    /// Cuts made so far.
    pub fn cuts(&self) -> u32 {
        self.cuts
    }

    /// The wrapped writer.
    pub fn inner(&self) -> &W {
        &self.inner
    }
}

impl<W: ErrorType> ErrorType for LineCutter<W> {
    type Error = W::Error;
}

impl<W: Write> Write for LineCutter<W> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        // Writes the runs of kept bytes between the cut ones.
        let mut kept_from = 0;
        for (i, &b) in buf.iter().enumerate() {
            if self.cutting > 0 {
                self.cutting -= 1;
                kept_from = i + 1;
                continue;
            }
            if b == 0 && self.every > 0 {
                self.frames += 1;
                if self.frames.is_multiple_of(self.every) {
                    self.inner.write_all(buf.get(kept_from..=i).unwrap_or(&[])).await?;
                    kept_from = i + 1;
                    self.cutting = self.burst;
                    self.cuts += 1;
                }
            }
        }
        self.inner.write_all(buf.get(kept_from..).unwrap_or(&[])).await?;
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), W::Error> {
        self.inner.flush().await
    }
}
