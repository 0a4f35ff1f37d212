//! Host adapters on tokio (feature `tokio`): framed links over TCP through
//! `embedded-io-adapters`, a reconnecting dialer and a listener as link
//! sources, and the `DelayNs` a stable conduit's driver needs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vox_types::LinkError> {
//! use vox_link_embedded::host::{TcpDialer, TokioDelay};
//! use vox_types::LinkSource;
//!
//! // Dials again (with backoff) whenever a link is asked for.
//! let mut dialer = TcpDialer::new("127.0.0.1:7000".parse().unwrap());
//! let link = dialer.next_link().await?;
//! # drop((link, TokioDelay));
//! # Ok(())
//! # }
//! ```

use crate::framed::{FramedLink, FramedLinkStorage, FramedRunner, FramedStats};
#[cfg(feature = "serial")]
pub use crate::serial_port_source::{NoDrain, SerialPortSource};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use vox_types::{LinkError, LinkSource};

/// `embedded_hal_async::delay::DelayNs` on tokio's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioDelay;

impl embedded_hal_async::delay::DelayNs for TokioDelay {
    async fn delay_ns(&mut self, ns: u32) {
        tokio::time::sleep(Duration::from_nanos(u64::from(ns))).await;
    }

    async fn delay_ms(&mut self, ms: u32) {
        tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
    }
}

/// A framed link over TCP: `SLOTS` payloads each way of at most `MTU`
/// bytes.
pub type TcpLink<const SLOTS: usize = 8, const MTU: usize = 1024> = FramedLink<CriticalSectionRawMutex, SLOTS, MTU>;

/// The runner task of a [`TcpLink`]: how the link ended, and its final
/// statistics.
pub type RunnerTask = tokio::task::JoinHandle<(Result<(), LinkError>, FramedStats)>;

fn io(e: std::io::Error) -> LinkError {
    LinkError::Io(e.kind().into())
}

/// A framed link over `stream` (no Nagle delay), its runner spawned on
/// tokio. The link ends when the connection does; the runner task says how.
pub fn spawn_framed<const SLOTS: usize, const MTU: usize>(
    stream: TcpStream,
) -> Result<(TcpLink<SLOTS, MTU>, RunnerTask), LinkError> {
    stream.set_nodelay(true).map_err(io)?;
    let (r, w) = stream.into_split();
    Ok(spawn_runner(FromTokio::new(r), FromTokio::new(w)))
}

/// A framed link over any tokio byte stream (a TLS stream, a serial port,
/// a Unix socket), its runner spawned on tokio.
pub fn spawn_framed_stream<const SLOTS: usize, const MTU: usize, S>(stream: S) -> (TcpLink<SLOTS, MTU>, RunnerTask)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    spawn_runner(FromTokio::new(r), FromTokio::new(w))
}

/// A fresh framed link whose runner moves bytes between `reader` and
/// `writer` on tokio.
fn spawn_runner<const SLOTS: usize, const MTU: usize, R, W>(
    mut reader: FromTokio<R>,
    mut writer: FromTokio<W>,
) -> (TcpLink<SLOTS, MTU>, RunnerTask)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (link, runner): (TcpLink<SLOTS, MTU>, FramedRunner<CriticalSectionRawMutex, SLOTS, MTU>) =
        FramedLinkStorage::new_shared();
    let task = tokio::spawn(async move {
        let stats = runner.stats_handle();
        let result = runner.run(&mut reader, &mut writer).await;
        (result, stats.get())
    });
    (link, task)
}

/// How long to wait between failed attempts: doubling from `initial` up
/// to `max`, and how many failures in a row to accept before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Failures in a row before `next_link` returns the error; `None`:
    /// never give up.
    pub give_up_after: Option<u32>,
}

impl Backoff {
    /// 50 ms doubling up to 2 s; never gives up.
    pub const DEFAULT: Self =
        Self { initial: Duration::from_millis(50), max: Duration::from_secs(2), give_up_after: None };

    pub(crate) fn wait(&self, failures: u32) -> Duration {
        self.initial.saturating_mul(1 << failures.min(16)).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A link source that dials `addr` for every new link (a reconnecting TCP
/// client), retrying with [`Backoff`] until it connects or gives up.
// r[impl host.tcp]
pub struct TcpDialer<const SLOTS: usize = 8, const MTU: usize = 1024> {
    addr: SocketAddr,
    backoff: Backoff,
}

impl TcpDialer {
    /// Dials `addr` for links of 8 slots of 1 KiB each way, with the
    /// default backoff.
    pub fn new(addr: SocketAddr) -> Self {
        Self::sized(addr)
    }
}

impl<const SLOTS: usize, const MTU: usize> TcpDialer<SLOTS, MTU> {
    /// Dials `addr` for links of `SLOTS` slots of `MTU` bytes.
    pub fn sized(addr: SocketAddr) -> Self {
        Self { addr, backoff: Backoff::DEFAULT }
    }

    /// Dials with `backoff` instead.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

impl<const SLOTS: usize, const MTU: usize> LinkSource for TcpDialer<SLOTS, MTU> {
    type Link = TcpLink<SLOTS, MTU>;

    /// Connects, retrying with backoff; the error of the last attempt once
    /// the backoff gives up. Cancel-safe.
    async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
        let mut failures = 0u32;
        loop {
            match TcpStream::connect(self.addr).await {
                Ok(stream) => return Ok(spawn_framed(stream)?.0),
                Err(e) => {
                    failures += 1;
                    if self.backoff.give_up_after.is_some_and(|n| failures >= n) {
                        return Err(io(e));
                    }
                    tokio::time::sleep(self.backoff.wait(failures - 1)).await;
                }
            }
        }
    }
}

/// A link source that accepts one connection per new link (a TCP server).
pub struct TcpListenerSource<const SLOTS: usize = 8, const MTU: usize = 1024> {
    listener: TcpListener,
}

impl TcpListenerSource {
    /// Accepts on `listener`, links of 8 slots of 1 KiB each way.
    pub fn new(listener: TcpListener) -> Self {
        Self::sized(listener)
    }
}

impl<const SLOTS: usize, const MTU: usize> TcpListenerSource<SLOTS, MTU> {
    /// Accepts on `listener`, links of `SLOTS` slots of `MTU` bytes.
    pub fn sized(listener: TcpListener) -> Self {
        Self { listener }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, LinkError> {
        self.listener.local_addr().map_err(io)
    }
}

impl<const SLOTS: usize, const MTU: usize> LinkSource for TcpListenerSource<SLOTS, MTU> {
    type Link = TcpLink<SLOTS, MTU>;

    /// The next accepted connection as a link. Cancel-safe (tokio's
    /// `accept` is).
    async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
        let (stream, _) = self.listener.accept().await.map_err(io)?;
        Ok(spawn_framed(stream)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

    // r[verify host.tcp]
    #[tokio::test]
    async fn a_dialer_waits_for_its_listener_with_backoff_and_links_carry_payloads() {
        // Reserve a port, then close it: the dialer's first attempts fail.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let backoff =
            Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(40), give_up_after: None };
        let mut dialer = TcpDialer::new(addr).with_backoff(backoff);
        let server = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut source = TcpListenerSource::new(TcpListener::bind(addr).await.unwrap());
            source.next_link().await.unwrap()
        };
        let (client, server) = tokio::join!(dialer.next_link(), server);
        let (ctx, _crx) = client.unwrap().split();
        let (_stx, mut srx) = server.split();
        let mut slot = ctx.reserve().await.unwrap().alloc(5).unwrap();
        slot.as_mut_slice().copy_from_slice(b"hello");
        slot.commit();
        assert_eq!(srx.recv().await.unwrap().unwrap().as_bytes(), b"hello");
    }

    #[tokio::test]
    async fn a_dialer_that_gives_up_returns_the_typed_error() {
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let backoff =
            Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: Some(3) };
        let mut dialer = TcpDialer::new(addr).with_backoff(backoff);
        let r = dialer.next_link().await;
        assert!(matches!(r, Err(LinkError::Io(_))), "{:?}", r.err());
    }
}
