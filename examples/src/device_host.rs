//! The host side of the demo protocol against a real device (the firmware
//! in QEMU, a board, or the device application in this process): framed
//! links on the byte stream from the device's UART, a `StableConduit`
//! acceptor, and a check of every reply and telemetry sample. Time comes
//! from the injected clock (tokio's, or a simulated one).

use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vox_conduit_stable::{
    ConfigError, RecvError, SendError, SessionError, StableConduit, StableRx, StableStats, StableStatsHandle,
    StableStorage, StableTx,
};
use vox_demo_protocol::{Command, DemoFamily, DemoMsg, Outcome, UART_CONFIG, UART_MTU, device_reply};
use vox_link_embedded::LinkChannel;
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::{FramedLink, FramedLinkStorage, FramedPort, framed::FramedStats};
use vox_types::{Clock, Conduit, ConduitRx, ConduitTx, ConduitTxPermit, LinkSource};

const HOST_SLOTS: usize = 8;
/// The host's framed link on the device's UART stream.
pub type HostLink = FramedLink<M, HOST_SLOTS, UART_MTU>;
/// The storage of [`HostLink`]s.
pub type HostLinkStorage = FramedLinkStorage<M, HOST_SLOTS, UART_MTU>;
/// The host's framed-link mutex.
pub type M = CriticalSectionRawMutex;
/// The host's conduit storage: 4 KiB / 64 messages of replay, 4 KiB / 64
/// messages of receive ring.
type HostStorage = StableStorage<M, 4096, 64, 4096, 64>;
type HostConduit = StableConduit<DemoFamily, HostStorage>;
/// The driver of a [`HostSession`].
pub type HostDriver = vox_conduit_stable::StableDriver<DemoFamily, HostStorage, vox_conduit_stable::Acceptor>;

/// Why an exercise stopped before its work was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The session ended.
    Session(SessionError),
    /// The device closed its direction.
    PeerClosed,
    /// Sending or receiving failed otherwise.
    Failed(String),
}

impl From<SendError> for Stopped {
    fn from(e: SendError) -> Self {
        e.session().map_or_else(|| Self::Failed(e.to_string()), |s| Self::Session(*s))
    }
}

impl From<RecvError> for Stopped {
    fn from(e: RecvError) -> Self {
        e.session().map_or_else(|| Self::Failed(e.to_string()), |s| Self::Session(*s))
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session(e) => e.fmt(f),
            Self::PeerClosed => f.write_str("the device closed its direction"),
            Self::Failed(e) => f.write_str(e),
        }
    }
}

/// The host's end of the device's serial line: accepts the device's TCP
/// connections (a new one after every drop) and keeps a framed link
/// attached to the current one.
pub struct TcpSerialPort {
    /// Where the conduit takes its links from.
    pub links: Arc<LinkChannel<M, HostLink>>,
    connections: AtomicU32,
    /// The links' storage, reused for every link of every connection: its
    /// counters add up across all of them.
    storage: Arc<HostLinkStorage>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl TcpSerialPort {
    /// Serves connections accepted on `listener` until dropped.
    pub fn spawn(listener: TcpListener) -> Arc<Self> {
        let port = Arc::new(Self {
            links: Arc::new(LinkChannel::new()),
            connections: AtomicU32::new(0),
            storage: Arc::new(FramedLinkStorage::new()),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(Self::serve(Arc::downgrade(&port), listener));
        *port.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        port
    }

    async fn serve(port: std::sync::Weak<Self>, listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            let Some(me) = port.upgrade() else { return };
            let _ = stream.set_nodelay(true);
            me.connections.fetch_add(1, Ordering::Relaxed);
            let (r, w) = stream.into_split();
            let (mut reader, mut writer) = (FromTokio::new(r), FromTokio::new(w));
            // The stream ended or failed: wait for the device to connect again.
            FramedPort::new(me.storage.clone())
                .serve(&mut reader, &mut writer, &TokioClock, |link| me.links.offer(link))
                .await;
        }
    }

    /// Connections the device made so far.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Framed-link counters of every link so far (the current one
    /// included).
    pub fn framed(&self) -> FramedStats {
        self.storage.stats()
    }
}

impl Drop for TcpSerialPort {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// What [`HostSession::exercise`] asks of the device.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Requests to send (ids continue across calls).
    pub requests: u32,
    /// Payload length of echo requests.
    pub echo_len: usize,
    /// Only echo requests (a throughput run) instead of a mix of set-output,
    /// read-sensor and echo.
    pub only_echo: bool,
    /// Wait until at least this many telemetry samples arrived in all.
    pub min_telemetry: u32,
    /// Requests in flight at most (the test's load; the conduit needs no
    /// limit).
    pub window: u32,
    /// Give up after this long.
    pub limit: Duration,
}

/// What happened during [`HostSession::exercise`].
#[derive(Debug, Clone)]
pub struct ExerciseReport {
    /// Requests sent.
    pub requests: u32,
    /// Correct replies, in order, once each.
    pub replies: u32,
    /// Telemetry samples received in this session so far, in order, once
    /// each.
    pub telemetry: u32,
    /// Replies or samples out of order, duplicated or with a wrong
    /// outcome (must be 0).
    pub wrong: u32,
    /// Echo payload bytes that came back.
    pub echoed_bytes: u64,
    /// From the first request to the last reply.
    pub elapsed: Duration,
    /// Why the session ended during the run, if it did.
    pub ended: Option<Stopped>,
}

/// One session with the device: the host's conduit (acceptor role), on
/// clock `C`.
pub struct HostSession<C: Clock = TokioClock> {
    tx: StableTx<DemoFamily, HostStorage>,
    rx: StableRx<DemoFamily, HostStorage>,
    stats: StableStatsHandle<HostStorage>,
    /// The driver's task, when the session spawned it on tokio.
    driver: Option<JoinHandle<Result<(), SessionError>>>,
    clock: C,
    next_id: u32,
    next_telemetry: u32,
    /// The device's pin state as the host expects it.
    outputs: u32,
}

/// The request with id `id`: a deterministic mix of the three commands.
fn command_for(id: u32, payload: &[u8], only_echo: bool) -> Command<'_> {
    match if only_echo { 2 } else { id % 3 } {
        0 => Command::SetOutput { pin: (id % 40) as u8, high: id.is_multiple_of(2) },
        1 => Command::ReadSensor { sensor: (id % 8) as u8 },
        _ => Command::Echo(payload.get(..(id as usize % (payload.len() + 1)).max(1)).unwrap_or(payload)),
    }
}

impl HostSession {
    /// A new session, taking links from `port`; a configuration the
    /// storage cannot serve is refused.
    pub fn start(port: &TcpSerialPort) -> Result<Self, ConfigError> {
        let links = port.links.clone();
        Self::spawn_with(move |driver: HostDriver| async move {
            let rng = ChaCha20Rng::from_os_rng();
            driver.run(links.receiver(), rng, TokioClock).await
        })
    }

    /// A new session on links from `source` (a serial port opened by path,
    /// as a board's `/dev/ttyACM0`).
    pub fn start_on<S>(source: S) -> Result<Self, ConfigError>
    where
        S: LinkSource + Send + 'static,
        S::Link: Send,
        <S::Link as vox_types::Link>::Tx: Send,
        <S::Link as vox_types::Link>::Rx: Send,
    {
        Self::spawn_with(move |driver: HostDriver| async move {
            driver.run(source, ChaCha20Rng::from_os_rng(), TokioClock).await
        })
    }

    fn spawn_with<R>(run: impl FnOnce(HostDriver) -> R) -> Result<Self, ConfigError>
    where
        R: Future<Output = Result<(), SessionError>> + Send + 'static,
    {
        let (mut session, driver) = HostSession::new(TokioClock)?;
        session.driver = Some(tokio::spawn(run(driver)));
        Ok(session)
    }
}

impl<C: Clock + Clone> HostSession<C> {
    /// A new session on `clock` and its driver, for any executor: run
    /// `driver.run(links, rng, clock)` beside the session (a simulation
    /// polls it with the device in the same process).
    pub fn new(clock: C) -> Result<(Self, HostDriver), ConfigError> {
        let (conduit, driver) = HostConduit::acceptor(Arc::new(HostStorage::new()), UART_CONFIG)?;
        let stats = conduit.stats_handle();
        let (tx, rx) = conduit.split();
        Ok((Self { tx, rx, stats, driver: None, clock, next_id: 0, next_telemetry: 0, outputs: 0 }, driver))
    }

    /// Counters of the host's conduit.
    pub fn stats(&self) -> StableStats {
        self.stats.get()
    }

    /// Sends `work.requests` requests while receiving, and checks that every
    /// reply is the device's correct answer, once and in order, and that
    /// telemetry sequence numbers have no gap and no repeat.
    pub async fn exercise(&mut self, work: Workload) -> ExerciseReport {
        let payload: Vec<u8> = (0..work.echo_len).map(|i| (i * 7 + 3) as u8).collect();
        let first = self.next_id;
        let end = first + work.requests;
        let mut report = ExerciseReport {
            requests: work.requests,
            replies: 0,
            telemetry: self.next_telemetry,
            wrong: 0,
            echoed_bytes: 0,
            elapsed: Duration::ZERO,
            ended: None,
        };
        let clock = self.clock.clone();
        let start = clock.now();
        let tx = &self.tx;
        let in_flight = tokio::sync::Semaphore::new(work.window.max(1) as usize);
        let send = async {
            for id in first..end {
                if let Ok(permit) = in_flight.acquire().await {
                    // Given back by the receiving loop when the reply comes.
                    permit.forget();
                }
                let command = command_for(id, &payload, work.only_echo);
                tx.reserve().await?.send(DemoMsg::Request { id, command })?;
            }
            Ok::<(), Stopped>(())
        };
        let (rx, outputs, next_telemetry) = (&mut self.rx, &mut self.outputs, &mut self.next_telemetry);
        let receive = async {
            let mut next_reply = first;
            while next_reply < end || *next_telemetry < work.min_telemetry {
                let msg = match rx.recv().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => return Err(Stopped::PeerClosed),
                    Err(e) => return Err(e.into()),
                };
                match msg.get::<DemoFamily>() {
                    DemoMsg::Reply { id, outcome } => {
                        let expected = device_reply(&command_for(next_reply, &payload, work.only_echo), outputs);
                        if *id == next_reply && *outcome == expected {
                            report.replies += 1;
                            if let Outcome::Echo(bytes) = outcome {
                                report.echoed_bytes += bytes.len() as u64;
                            }
                        } else {
                            report.wrong += 1;
                        }
                        in_flight.add_permits(1);
                        next_reply = id.wrapping_add(1);
                        if next_reply == end {
                            report.elapsed = clock.now() - start;
                        }
                    }
                    DemoMsg::Telemetry { seq, .. } => {
                        if *seq != *next_telemetry {
                            report.wrong += 1;
                        }
                        *next_telemetry = seq.wrapping_add(1);
                    }
                    DemoMsg::Request { .. } => report.wrong += 1,
                }
            }
            Ok(())
        };
        let work_done = async {
            let (sent, received) = tokio::join!(send, receive);
            sent.and(received)
        };
        let outcome = select(work_done, clock.sleep(work.limit)).await;
        self.next_id = end;
        report.telemetry = self.next_telemetry;
        if let Either::First(Err(e)) = outcome {
            report.ended = Some(e);
        }
        if report.elapsed.is_zero() {
            report.elapsed = clock.now() - start;
        }
        report
    }

    /// Receives (and drops) messages until the session fails, at most
    /// `limit`; returns the error, or `None` on timeout.
    pub async fn until_ended(&mut self, limit: Duration) -> Option<Stopped> {
        let rx = &mut self.rx;
        let ended = async {
            loop {
                match rx.recv().await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Stopped::PeerClosed,
                    Err(e) => return e.into(),
                }
            }
        };
        match select(ended, self.clock.sleep(limit)).await {
            Either::First(stopped) => Some(stopped),
            Either::Second(()) => None,
        }
    }
}

impl<C: Clock> Drop for HostSession<C> {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}
