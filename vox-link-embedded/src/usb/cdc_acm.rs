//! The two halves of a framed link's byte stream on embassy-usb's CDC-ACM
//! class: embassy-usb's buffered receiver, and a [`PacketWriter`] on its
//! sender.

use super::{PacketSink, PacketWriter};
use embassy_usb::class::cdc_acm::{BufferedReceiver, CdcAcmClass, CdcAcmError, ControlChanged, Sender};
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
/// Run a [`FramedRunner`](crate::FramedRunner) on them once per time the
/// host opens the port, until it closes it (the third value tells):
///
/// ```
/// use embassy_futures::select::select;
/// use embassy_sync::blocking_mutex::raw::NoopRawMutex;
/// use embassy_usb::class::cdc_acm::CdcAcmClass;
/// use embassy_usb::driver::Driver;
/// use embassy_sync::channel::Channel;
/// use vox_link_embedded::{FramedLink, FramedLinkStorage, FramedPort};
/// use vox_link_embedded::usb::{cdc_acm_stream, port_closed, port_opened};
/// use vox_types::Clock;
///
/// async fn serve_port<'d, D: Driver<'d>>(
///     class: CdcAcmClass<'d, D>,
///     read_buf: &'d mut [u8],
///     storage: &'static FramedLinkStorage<NoopRawMutex, 2, 256>,
///     // Where the conduit takes its links (a `LinkChannel` of
///     // vox-conduit-stable does the same).
///     links: &Channel<NoopRawMutex, FramedLink<NoopRawMutex, 2, 256>, 1>,
///     clock: impl Clock,
/// ) {
///     let (mut rx, mut tx, control) = cdc_acm_stream(class, read_buf);
///     let port = FramedPort::new(storage);
///     loop {
///         port_opened(&mut rx, &control).await;
///         tx.reset();
///         // One link per opening, attached once the conduit has dropped
///         // the previous one, and handed to it. A close or an unplug
///         // ends this link; the session goes on.
///         let one_link = port.run_link(&mut rx, &mut tx, &clock, |link| links.send(link));
///         select(one_link, port_closed(&control)).await;
///     }
/// }
/// ```
pub fn cdc_acm_stream<'d, D: Driver<'d>>(
    class: CdcAcmClass<'d, D>,
    read_buf: &'d mut [u8],
) -> (CdcAcmReader<'d, D>, CdcAcmWriter<'d, D>, ControlChanged<'d>) {
    let (sender, receiver, control) = class.split_with_control();
    (receiver.into_buffered(read_buf), PacketWriter::new(sender), control)
}

/// Waits until the host has the port open: the USB interface enabled and
/// DTR set (a host sets DTR when it opens a serial port).
pub async fn port_opened<'d, D: Driver<'d>>(reader: &mut CdcAcmReader<'d, D>, control: &ControlChanged<'d>) {
    reader.wait_connection().await;
    while !control.dtr() {
        control.control_changed().await;
    }
}

/// Returns when the host closes the port (DTR dropped). An unplug ends
/// reads and writes with `NotConnected` instead.
pub async fn port_closed(control: &ControlChanged<'_>) {
    while control.dtr() {
        control.control_changed().await;
    }
}
