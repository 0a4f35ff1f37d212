//! Host adapters on tokio (feature `tokio`): framed links over TCP through
//! `embedded-io-adapters`, a reconnecting dialer (over one or several
//! addresses) and a listener as link sources, and the [`Clock`] every
//! driver and acceptor takes ([`TokioClock`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), vox_types::LinkError> {
//! use vox_link_embedded::host::{TcpDialer, TokioClock};
//! use vox_types::{Clock, LinkSource};
//!
//! // Dials again (with backoff) whenever a link is asked for: the first
//! // gateway, or the next one when it does not answer.
//! let mut dialer = TcpDialer::new("127.0.0.1:7000".parse().unwrap())
//!     .with_fallback("127.0.0.1:7001".parse().unwrap());
//! let link = dialer.next_link().await?;
//! # drop((link, TokioClock.now()));
//! # Ok(())
//! # }
//! ```

use crate::framed::{FramedLink, FramedLinkStorage, FramedRunner, FramedStats};
#[cfg(feature = "serial")]
pub use crate::serial_port_source::{NoDrain, SerialPortSource};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use std::vec::Vec;
use tokio::net::{TcpListener, TcpStream};
use vox_types::{Clock, Instant, LinkError, LinkSource, MaybeSend};

/// The [`Clock`] on tokio's time. Its epoch is the first reading in the
/// process, shared by every `TokioClock`; tokio's paused test time works
/// within one runtime (runtimes whose paused clocks disagree would see
/// each other's time offset).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use vox_link_embedded::host::TokioClock;
/// use vox_types::Clock;
///
/// let start = TokioClock.now();
/// TokioClock.sleep(Duration::from_millis(5)).await;
/// assert!(TokioClock.now() - start >= Duration::from_millis(5));
/// # }
/// ```
// r[impl time.clock]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl TokioClock {
    fn epoch() -> tokio::time::Instant {
        static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
        *EPOCH.get_or_init(tokio::time::Instant::now)
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let since = tokio::time::Instant::now().saturating_duration_since(Self::epoch());
        // Whole seconds and the millisecond part: no 128-bit division
        // (drivers read the clock at every frame).
        Instant::from_millis(since.as_secs().saturating_mul(1000).saturating_add(u64::from(since.subsec_millis())))
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + MaybeSend {
        let deadline = Self::epoch().checked_add(Duration::from_millis(at.as_millis()));
        async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                // Beyond what tokio can represent: never.
                None => core::future::pending().await,
            }
        }
    }
}

/// A framed link over TCP: `SLOTS` payloads each way of at most `MTU`
/// bytes. Between two ends, the socket buffers of both operating systems
/// hold bytes beyond the slots: a task that sends before it reads stalls
/// only past the slots plus those buffers (the bare conduit's bound);
/// `FramedStats::stalled_reserves` counts the waits that may be one.
pub type TcpLink<const SLOTS: usize = 8, const MTU: usize = 1024> = FramedLink<CriticalSectionRawMutex, SLOTS, MTU>;

/// The runner task of a [`TcpLink`]: how the link ended, and its final
/// statistics.
pub type RunnerTask = tokio::task::JoinHandle<(Result<(), LinkError>, FramedStats)>;

fn io(e: std::io::Error) -> LinkError {
    LinkError::Io(e.kind().into())
}

/// A framed link over `stream` (no Nagle delay), its runner spawned on
/// tokio. The link ends when the connection does; the runner task says how.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tokio::net::{TcpListener, TcpStream};
/// use vox_link_embedded::host::spawn_framed;
/// use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};
///
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (server, _) = listener.accept().await?;
/// let (client, client_task) = spawn_framed::<4, 256>(client)?;
/// let (server, _server_task) = spawn_framed::<4, 256>(server)?;
///
/// let (tx, rx) = client.split();
/// let mut slot = tx.reserve().await?.alloc(2)?;
/// slot.as_mut_slice().copy_from_slice(b"hi");
/// slot.commit();
/// tx.close().await?;
/// drop(rx);
/// let (_tx, mut rx) = server.split();
/// assert_eq!(rx.recv().await?.unwrap().as_bytes(), b"hi");
/// // The client's runner finished: how, and its counters.
/// let (ended, stats) = client_task.await?;
/// assert_eq!(ended, Ok(()));
/// assert_eq!(stats.frames_sent, 1);
/// # Ok(())
/// # }
/// ```
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
    /// Failures in a row before `next_link` returns the error (for a
    /// dialer over several addresses: failed rounds, each trying every
    /// address once); `None`: never give up.
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

/// A link source that dials for every new link (a reconnecting TCP
/// client): the addresses in order, the next one when one fails; after a
/// round in which all failed, it waits as [`Backoff`] says and starts
/// again from the first. With [`Backoff::give_up_after`] it stops after
/// that many failed rounds with [`LinkError::GaveUp`].
///
/// ```no_run
/// # async fn demo() -> Result<(), vox_types::LinkError> {
/// use vox_link_embedded::host::TcpDialer;
/// use vox_types::LinkSource;
///
/// // Two gateways: the second serves while the first is down.
/// let mut dialer = TcpDialer::new("10.0.0.1:7000".parse().unwrap()).with_fallback("10.0.0.2:7000".parse().unwrap());
/// let _link = dialer.next_link().await?;
/// # Ok(())
/// # }
/// ```
// r[impl host.tcp]
// r[impl found.dialer-list]
pub struct TcpDialer<const SLOTS: usize = 8, const MTU: usize = 1024> {
    addrs: Vec<SocketAddr>,
    backoff: Backoff,
    connect_timeout: Duration,
    last_connected: Option<SocketAddr>,
}

/// How long one connection attempt may take before the next address is
/// tried (a gateway whose host is gone drops the attempt silently, and
/// the system would wait about two minutes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

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
        Self::with_addrs([addr])
    }

    /// Dials `addrs` in order (the next on failure) for links of `SLOTS`
    /// slots of `MTU` bytes; an empty list gives up at once.
    ///
    /// ```
    /// use vox_link_embedded::host::TcpDialer;
    ///
    /// let gateways = ["127.0.0.1:7000".parse().unwrap(), "127.0.0.1:7001".parse().unwrap()];
    /// let dialer = TcpDialer::<8, 1024>::with_addrs(gateways);
    /// assert_eq!(dialer.addrs(), &gateways);
    /// ```
    pub fn with_addrs(addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            addrs: addrs.into_iter().collect(),
            backoff: Backoff::DEFAULT,
            connect_timeout: CONNECT_TIMEOUT,
            last_connected: None,
        }
    }

    /// Gives up on one connection attempt after `timeout` (default
    /// [`CONNECT_TIMEOUT`]) and tries the next address.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Adds `addr` after the addresses already listed: dialed when they
    /// all fail.
    pub fn with_fallback(mut self, addr: SocketAddr) -> Self {
        self.addrs.push(addr);
        self
    }

    /// Dials with `backoff` instead.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The addresses, in the order they are tried.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The address of the last successful connection.
    pub fn last_connected(&self) -> Option<SocketAddr> {
        self.last_connected
    }
}

impl<const SLOTS: usize, const MTU: usize> LinkSource for TcpDialer<SLOTS, MTU> {
    type Link = TcpLink<SLOTS, MTU>;

    /// Connects to the first address that accepts (each attempt within the
    /// connect timeout), round after round with backoff between rounds;
    /// [`LinkError::GaveUp`] once the backoff gives up (after at least
    /// one round). Cancel-safe.
    async fn next_link(&mut self) -> Result<Self::Link, LinkError> {
        let mut rounds = 0u32;
        let mut attempts = 0u32;
        loop {
            let mut last = embedded_io_async::ErrorKind::NotConnected;
            for &addr in &self.addrs {
                let attempt = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await;
                let failed = match attempt.map(|connected| connected.map(spawn_framed)) {
                    Ok(Ok(Ok((link, _runner)))) => {
                        self.last_connected = Some(addr);
                        return Ok(link);
                    }
                    Ok(Ok(Err(e))) => match e {
                        LinkError::Io(kind) => kind,
                        _ => embedded_io_async::ErrorKind::Other,
                    },
                    Ok(Err(e)) => e.kind().into(),
                    Err(_elapsed) => embedded_io_async::ErrorKind::TimedOut,
                };
                attempts = attempts.saturating_add(1);
                last = failed;
            }
            rounds += 1;
            if self.addrs.is_empty() || self.backoff.give_up_after.is_some_and(|n| rounds >= n) {
                return Err(LinkError::GaveUp { attempts, last });
            }
            tokio::time::sleep(self.backoff.wait(rounds - 1)).await;
        }
    }
}

/// A link source that accepts one connection per new link (a TCP server).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tokio::net::TcpListener;
/// use vox_link_embedded::host::{TcpDialer, TcpListenerSource};
/// use vox_types::{Link, LinkRx, LinkSource, LinkTx, LinkTxPermit, WriteSlot};
///
/// let mut listener = TcpListenerSource::new(TcpListener::bind("127.0.0.1:0").await?);
/// let mut dialer = TcpDialer::new(listener.local_addr()?);
/// // One listener serves link after link (a stable conduit's reattachments).
/// for round in 0..2u8 {
///     let (client, server) = tokio::join!(dialer.next_link(), listener.next_link());
///     let (tx, _rx) = client?.split();
///     let (_tx, mut rx) = server?.split();
///     let mut slot = tx.reserve().await?.alloc(1)?;
///     slot.as_mut_slice()[0] = round;
///     slot.commit();
///     assert_eq!(rx.recv().await?.unwrap().as_bytes(), [round]);
/// }
/// # Ok(())
/// # }
/// ```
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
    use std::string::ToString;
    use vox_types::{Link, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

    /// An address whose port is bound but not listening: connecting is
    /// refused at once, and the port stays taken while the socket lives.
    fn dead_address() -> (tokio::net::TcpSocket, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

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
        // Bound but not listening: refused, and no other test can take the port.
        let (_held, addr) = dead_address();
        let backoff =
            Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: Some(3) };
        let mut dialer = TcpDialer::new(addr).with_backoff(backoff);
        let r = dialer.next_link().await;
        assert!(matches!(r, Err(LinkError::GaveUp { attempts: 3, .. })), "{:?}", r.err());
    }

    // r[verify found.dialer-list]
    #[tokio::test]
    async fn a_dialer_over_several_addresses_reaches_the_live_one_and_gives_up_typed() {
        // The first address is dead (bound, not listening); the second listens.
        let (_held, dead) = dead_address();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap();
        let backoff =
            Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: Some(2) };
        let mut dialer = TcpDialer::new(dead).with_fallback(live).with_backoff(backoff);
        assert_eq!(dialer.addrs(), &[dead, live]);
        let mut source = TcpListenerSource::new(listener);
        for _ in 0..3 {
            let (client, _server) = tokio::join!(dialer.next_link(), source.next_link());
            assert!(client.is_ok(), "the live gateway serves every time");
            assert_eq!(dialer.last_connected(), Some(live));
        }
        drop(source);
        // Both dead now: two rounds of two attempts, then a typed give-up.
        let r = dialer.next_link().await;
        assert!(matches!(r, Err(LinkError::GaveUp { attempts: 4, .. })), "{:?}", r.err());
        assert!(r.err().unwrap().to_string().contains("gave up"));
        let r = TcpDialer::<8, 1024>::with_addrs([]).next_link().await;
        assert!(matches!(r, Err(LinkError::GaveUp { attempts: 0, .. })), "{:?}", r.err());
    }
}
