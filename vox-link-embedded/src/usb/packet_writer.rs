//! `PacketWriter`: an `embedded-io-async` writer over a packet endpoint that
//! never leaves a transfer open (short or zero-length packet on flush).

use core::future::Future;
use embedded_io_async::{ErrorType, Write};

/// An endpoint that sends whole packets: a USB bulk IN endpoint.
pub trait PacketSink {
    /// Why a packet could not be sent (the device was disconnected).
    type Error: embedded_io_async::Error;

    /// Largest packet the endpoint sends (its `wMaxPacketSize`): a packet of
    /// this length does not end a transfer.
    fn max_packet_size(&self) -> usize;

    /// Sends one packet of at most [`max_packet_size`](Self::max_packet_size)
    /// bytes; an empty one is a zero-length packet.
    fn write_packet(&mut self, packet: &[u8]) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Byte-stream writer over a [`PacketSink`] that ends every flushed write
/// with a short packet (or a zero-length packet after a full one), so the
/// host completes the transfer at once. Bytes are gathered into packets of
/// `min(N, max_packet_size)` bytes; `N` is the buffer (64: USB full speed).
///
/// ```
/// # use core::convert::Infallible;
/// # use embedded_io_async::Write;
/// # use vox_link_embedded::usb::{PacketSink, PacketWriter};
/// /// Records packet lengths (a stand-in for a USB endpoint).
/// struct Lengths(Vec<usize>);
/// impl PacketSink for Lengths {
///     type Error = Infallible;
///     fn max_packet_size(&self) -> usize { 64 }
///     async fn write_packet(&mut self, p: &[u8]) -> Result<(), Infallible> {
///         self.0.push(p.len());
///         Ok(())
///     }
/// }
/// # futures::executor::block_on(async {
/// let mut w = PacketWriter::<_, 64>::new(Lengths(Vec::new()));
/// w.write_all(&[7; 128]).await.unwrap();
/// w.flush().await.unwrap();
/// // Two full packets, then a zero-length one ends the transfer.
/// assert_eq!(w.into_inner().0, [64, 64, 0]);
/// # });
/// ```
pub struct PacketWriter<S: PacketSink, const N: usize = 64> {
    sink: S,
    buf: [u8; N],
    /// Bytes gathered in `buf`.
    len: usize,
    /// The last packet sent was full: the transfer is still open.
    open: bool,
}

impl<S: PacketSink, const N: usize> PacketWriter<S, N> {
    const NOT_EMPTY: () = assert!(N > 0, "a packet buffer of 0 bytes");

    /// A writer on `sink`.
    pub const fn new(sink: S) -> Self {
        let () = Self::NOT_EMPTY;
        Self { sink, buf: [0; N], len: 0, open: false }
    }

    /// The sink, e.g. to wait for the next USB connection.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Gives the sink back (bytes not flushed are dropped).
    pub fn into_inner(self) -> S {
        self.sink
    }

    /// Forgets bytes not yet sent and any open transfer: for a new
    /// connection.
    pub fn reset(&mut self) {
        self.len = 0;
        self.open = false;
    }

    async fn send(&mut self, packet_len: usize, from_buf: Option<&[u8]>) -> Result<(), S::Error> {
        let full = packet_len == self.sink.max_packet_size();
        match from_buf {
            Some(data) => self.sink.write_packet(data).await?,
            None => {
                let data = self.buf.get(..packet_len).unwrap_or(&[]);
                self.sink.write_packet(data).await?;
                self.len = 0;
            }
        }
        self.open = full;
        Ok(())
    }
}

impl<S: PacketSink, const N: usize> ErrorType for PacketWriter<S, N> {
    type Error = S::Error;
}

impl<S: PacketSink, const N: usize> Write for PacketWriter<S, N> {
    async fn write(&mut self, data: &[u8]) -> Result<usize, Self::Error> {
        let packet = N.min(self.sink.max_packet_size()).max(1);
        if data.is_empty() {
            return Ok(0);
        }
        if self.len == 0
            && let Some(whole) = data.get(..packet)
        {
            // A whole packet straight from the caller's bytes.
            self.send(packet, Some(whole)).await?;
            return Ok(packet);
        }
        let n = (packet - self.len).min(data.len());
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), data.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len += n;
        if self.len == packet {
            self.send(packet, None).await?;
        }
        Ok(n)
    }

    // r[impl board.usb]
    async fn flush(&mut self) -> Result<(), Self::Error> {
        // What is gathered is shorter than a full packet (a full one went
        // out in `write`), so sending it ends the transfer; with nothing
        // gathered after a full packet, a zero-length packet does.
        if self.len > 0 || self.open {
            self.send(self.len, None).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
