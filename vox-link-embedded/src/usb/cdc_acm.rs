//! The two halves of a framed link's byte stream on embassy-usb's CDC-ACM
//! class: embassy-usb's buffered receiver, and a [`PacketWriter`] on its
//! sender.

use super::{PacketSink, PacketWriter};
use embassy_usb::class::cdc_acm::{BufferedReceiver, CdcAcmClass, CdcAcmError, Sender};
use embassy_usb::driver::{Driver, EndpointError};

/// The read half: embassy-usb's buffered CDC-ACM receiver (reads fail with
/// `NotConnected` while the USB device is disconnected).
pub type CdcAcmReader<'d, D> = BufferedReceiver<'d, D>;

/// The write half: packets of at most 64 bytes (USB full speed), each
/// flushed write ended with a short or zero-length packet.
pub type CdcAcmWriter<'d, D> = PacketWriter<Sender<'d, D>, 64>;

impl<'d, D: Driver<'d>> PacketSink for Sender<'d, D> {
    type Error = CdcAcmError;

    fn max_packet_size(&self) -> usize {
        usize::from(Sender::max_packet_size(self))
    }

    async fn write_packet(&mut self, packet: &[u8]) -> Result<(), CdcAcmError> {
        // Packets are never longer than the maximum, so the only failure is
        // a disabled endpoint: the device is disconnected.
        Sender::write_packet(self, packet).await.map_err(|_: EndpointError| CdcAcmError::NotConnected)
    }
}

/// Splits a CDC-ACM class into a framed link's byte stream: a reader
/// (buffering one packet in `read_buf`, at least the maximum packet size)
/// and a writer that never leaves a frame in the host's buffer.
///
/// Run a [`FramedRunner`](crate::FramedRunner) on them per connection:
/// wait for `reader.wait_connection()` (and the host's DTR), run, and when
/// the run ends (disconnect) wait again; [`PacketWriter::reset`] drops
/// what the old connection left.
pub fn cdc_acm_stream<'d, D: Driver<'d>>(
    class: CdcAcmClass<'d, D>,
    read_buf: &'d mut [u8],
) -> (CdcAcmReader<'d, D>, CdcAcmWriter<'d, D>) {
    let (sender, receiver) = class.split();
    (receiver.into_buffered(read_buf), PacketWriter::new(sender))
}
