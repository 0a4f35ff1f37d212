//! `SerialPortSource`: framed links on a serial port opened by path,
//! reattached after a link death and reopened after the device disappears
//! (feature `serial`; re-exported from [`host`](crate::host)).

use crate::host::{Backoff, TcpLink};
use crate::{FramedLinkStorage, FramedRunner};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use vox_types::{LinkError, LinkSource};

/// A link source on a serial port opened by path (feature `serial`): a new
/// link attaches to the open port after a link death (a CRC error, a
/// garbled frame); when the device disappears (USB unplug,
/// re-enumeration: the port fails or ends), the port is reopened by path
/// with [`Backoff`], and `next_link` returns the typed error once the
/// backoff gives up.
///
/// ```no_run
/// # async fn demo() -> Result<(), vox_types::LinkError> {
/// use vox_link_embedded::host::SerialPortSource;
/// use vox_types::LinkSource;
///
/// let mut port = SerialPortSource::new("/dev/ttyACM0", 115_200);
/// let link = port.next_link().await?;
/// # drop(link);
/// # Ok(())
/// # }
/// ```
// r[impl host.serial]
pub struct SerialPortSource<const SLOTS: usize = 8, const MTU: usize = 1024> {
    path: std::string::String,
    baud: u32,
    backoff: Backoff,
    /// The open port while no link uses it.
    idle: Option<tokio_serial::SerialStream>,
    /// The current link's runner; it gives the port back when the link
    /// ends, unless the port failed.
    current: Option<tokio::task::JoinHandle<Option<tokio_serial::SerialStream>>>,
    opens: u32,
}

impl SerialPortSource {
    /// The port at `path` at `baud`, links of 8 slots of 1 KiB each way.
    pub fn new(path: &str, baud: u32) -> Self {
        Self::sized(path, baud)
    }
}

impl<const SLOTS: usize, const MTU: usize> SerialPortSource<SLOTS, MTU> {
    /// The port at `path` at `baud`, links of `SLOTS` slots of `MTU` bytes.
    pub fn sized(path: &str, baud: u32) -> Self {
        Self { path: path.into(), baud, backoff: Backoff::DEFAULT, idle: None, current: None, opens: 0 }
    }

    /// Reopens with `backoff` instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use vox_link_embedded::host::{Backoff, SerialPortSource};
    /// use vox_types::{LinkError, LinkSource};
    ///
    /// let backoff = Backoff { initial: Duration::from_millis(1), give_up_after: Some(3), ..Backoff::DEFAULT };
    /// let mut port = SerialPortSource::new("/dev/vox-no-such-port", 115_200).with_backoff(backoff);
    /// // No such device: three tries, then the typed error.
    /// let r = port.next_link().await;
    /// assert!(matches!(r, Err(LinkError::GaveUp { attempts: 3, .. })));
    /// assert_eq!(port.opens(), 0);
    /// # }
    /// ```
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How many times the port was opened (the first time included).
    pub fn opens(&self) -> u32 {
        self.opens
    }

    async fn open(&mut self) -> Result<tokio_serial::SerialStream, LinkError> {
        let mut failures = 0u32;
        loop {
            match tokio_serial::SerialStream::open(&tokio_serial::new(&self.path, self.baud)) {
                Ok(port) => {
                    self.opens += 1;
                    return Ok(port);
                }
                Err(e) => {
                    failures += 1;
                    if self.backoff.give_up_after.is_some_and(|n| failures >= n) {
                        let last = std::io::Error::from(e).kind().into();
                        return Err(LinkError::GaveUp { attempts: failures, last });
                    }
                    tokio::time::sleep(self.backoff.wait(failures - 1)).await;
                }
            }
        }
    }
}

impl<const SLOTS: usize, const MTU: usize> LinkSource for SerialPortSource<SLOTS, MTU> {
    type Link = TcpLink<SLOTS, MTU>;

    /// The port back from the previous link (or opened again by path),
    /// with a fresh link attached.
    async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
        if let Some(task) = self.current.as_mut() {
            // The previous link's runner ends once its link is dropped.
            let back = task.await.ok().flatten();
            self.current = None;
            self.idle = back;
        }
        let port = match self.idle.take() {
            Some(port) => port,
            None => self.open().await?,
        };
        let (link, runner): (TcpLink<SLOTS, MTU>, FramedRunner<CriticalSectionRawMutex, SLOTS, MTU>) =
            FramedLinkStorage::new_shared();
        self.current = Some(tokio::spawn(async move {
            let (r, w) = tokio::io::split(NoDrain(port));
            let (mut reader, mut writer) = (FromTokio::new(r), FromTokio::new(w));
            match runner.run(&mut reader, &mut writer).await {
                // The port itself failed or ended: the device is gone;
                // reopen by path.
                Err(LinkError::Io(_) | LinkError::Reset) => None,
                _ => Some(reader.into_inner().unsplit(writer.into_inner()).0),
            }
        }));
        Ok(link)
    }
}

/// A byte stream whose `flush` returns at once. A serial port's flush is
/// `tcdrain`, which blocks the thread until the UART has sent everything;
/// written bytes are already in the kernel's buffer, which is all a
/// framed link needs.
pub struct NoDrain<S>(pub S);

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for NoDrain<S> {
    fn poll_read(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> core::task::Poll<std::io::Result<()>> {
        core::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for NoDrain<S> {
    fn poll_write(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
        buf: &[u8],
    ) -> core::task::Poll<std::io::Result<usize>> {
        core::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        self: core::pin::Pin<&mut Self>,
        _cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<std::io::Result<()>> {
        core::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<std::io::Result<()>> {
        core::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
