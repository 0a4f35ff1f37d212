//! `NoisyWriter`: wraps a byte-stream writer and flips, drops or inserts
//! bytes at a seeded, configurable rate: a deterministic bad serial line.

use embedded_io_async::{ErrorType, Write};

/// How often each kind of noise strikes, in events per million bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoiseRates {
    /// A byte has one random bit flipped.
    pub flip_ppm: u32,
    /// A byte is lost.
    pub drop_ppm: u32,
    /// A random byte is inserted before this one.
    pub insert_ppm: u32,
}

impl NoiseRates {
    /// The same rate for flips, drops and inserts.
    pub const fn uniform(ppm: u32) -> Self {
        Self { flip_ppm: ppm, drop_ppm: ppm, insert_ppm: ppm }
    }
}

/// Counts of the noise a [`NoisyWriter`] injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoiseCounts {
    /// Bytes with a bit flipped.
    pub flipped: u64,
    /// Bytes dropped.
    pub dropped: u64,
    /// Bytes inserted.
    pub inserted: u64,
}

/// A writer that corrupts what passes through it.
///
/// ```
/// # futures::executor::block_on(async {
/// use embedded_io_async::Write;
/// use vox_link_embedded::sim::{NoiseRates, NoisyWriter};
///
/// let mut out = [0u8; 8];
/// // Every byte gets one bit flipped; nothing dropped or inserted.
/// let rates = NoiseRates { flip_ppm: 1_000_000, ..NoiseRates::default() };
/// let mut line = NoisyWriter::new(&mut out[..], rates, 7);
/// line.write_all(&[0; 8]).await.unwrap();
/// assert_eq!(line.counts().flipped, 8);
/// drop(line);
/// assert!(out.iter().all(|b| b.count_ones() == 1));
/// # });
/// ```
pub struct NoisyWriter<W> {
    inner: W,
    rates: NoiseRates,
    rng: u64,
    counts: NoiseCounts,
    buf: [u8; 128],
}

impl<W> NoisyWriter<W> {
    /// Wraps `inner`; the same `seed` gives the same noise for the same bytes.
    pub fn new(inner: W, rates: NoiseRates, seed: u64) -> Self {
        Self { inner, rates, rng: seed | 1, counts: NoiseCounts::default(), buf: [0; 128] }
    }

    /// Noise injected so far.
    pub fn counts(&self) -> NoiseCounts {
        self.counts
    }

    /// Changes the rates from now on.
    pub fn set_rates(&mut self, rates: NoiseRates) {
        self.rates = rates;
    }

    /// xorshift64*: tiny, seedable, good enough for noise.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn strikes(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.next() % 1_000_000 < u64::from(ppm)
    }
}

impl<W: ErrorType> ErrorType for NoisyWriter<W> {
    type Error = W::Error;
}

impl<W: Write> Write for NoisyWriter<W> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        // Take at most half the scratch buffer, so an insert per byte fits.
        let take = buf.len().min(self.buf.len() / 2);
        let mut out = 0;
        for &b in buf.get(..take).unwrap_or(&[]) {
            if self.strikes(self.rates.insert_ppm) {
                let junk = self.next() as u8;
                if let Some(slot) = self.buf.get_mut(out) {
                    *slot = junk;
                    out += 1;
                    self.counts.inserted += 1;
                }
            }
            if self.strikes(self.rates.drop_ppm) {
                self.counts.dropped += 1;
                continue;
            }
            let mut b = b;
            if self.strikes(self.rates.flip_ppm) {
                b ^= 1 << (self.next() % 8);
                self.counts.flipped += 1;
            }
            if let Some(slot) = self.buf.get_mut(out) {
                *slot = b;
                out += 1;
            }
        }
        let (inner, scratch) = (&mut self.inner, &self.buf);
        inner.write_all(scratch.get(..out).unwrap_or(&[])).await?;
        Ok(take)
    }

    async fn flush(&mut self) -> Result<(), W::Error> {
        self.inner.flush().await
    }
}
