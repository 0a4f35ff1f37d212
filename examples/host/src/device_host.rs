//! The host side of the demo against a real device (the firmware in QEMU,
//! a board, or the device application in this process): framed links on
//! the byte stream from the device's UART, a `StableConduit` acceptor
//! carrying calls (`vox-rpc`), and a check of every answer and telemetry
//! sample. Time comes from the injected clock (tokio's, or a simulated
//! one).

use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::CryptoRng;
use rand_chacha::rand_core::SeedableRng;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use vox_conduit_stable::{ConfigError, SessionError, StableConduit, StableStats, StableStatsHandle, StableStorage};
use vox_demo_protocol::{
    Echo, HostTime, Log, Pin, ReadSensor, SetOutput, Telemetry, UART_CONFIG, UART_MTU, sensor_value,
};
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::{FramedLink, FramedLinkStorage};
use vox_rpc::{CallError, Calls, Client, DefmtFrames, RpcFamily, Server, Subscription};
use vox_types::{Clock, LinkSource};

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
type HostConduit = StableConduit<RpcFamily, HostStorage>;
type StableDriver = vox_conduit_stable::StableDriver<RpcFamily, HostStorage, vox_conduit_stable::Acceptor>;
/// The host's calls in flight: 64 entries of 256 bytes.
pub type HostCalls = Calls<M, 64, 256, 16>;
/// A client of the device, on clock `C`.
pub type DeviceClient<C> = Client<HostCalls, C>;

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

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session(e) => e.fmt(f),
            Self::PeerClosed => f.write_str("the device closed its direction"),
            Self::Failed(e) => f.write_str(e),
        }
    }
}

/// The telemetry samples of one host session, as the host checks them by
/// the topic's sequence numbers (the device's, from its boot): from the
/// first one this session sees, each once, in order (a sample marked as
/// a possible duplicate may repeat an earlier one: the device resends
/// what the previous host session had not credited).
#[derive(Debug, Default)]
struct Telemetry_ {
    /// Samples received in order.
    next: AtomicU32,
    /// The topic sequence number expected next (`None` before the first).
    expected: Mutex<Option<u32>>,
    wrong: AtomicU32,
}

impl Telemetry_ {
    fn check(&self, seq: u32, possibly_duplicate: bool) {
        let mut expected = self.expected.lock().unwrap_or_else(|e| e.into_inner());
        match *expected {
            Some(e) if seq == e => {}
            // Sequence numbers wrap: "before" by the signed distance.
            Some(e) if possibly_duplicate && (e.wrapping_sub(seq) as i32) > 0 => return,
            Some(_) => {
                self.wrong.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        *expected = Some(seq.wrapping_add(1));
        self.next.fetch_add(1, Ordering::Relaxed);
    }
}

/// The host's subscription to the device's telemetry (room for 8 samples).
pub type TelemetrySubscription = Subscription<Telemetry, M, 8, 32>;
/// The host's subscription to the device's log (room for 8 lines).
pub type LogSubscription = Subscription<Log, M, 8, 64>;
/// The host's subscription to the device's defmt frames (a firmware built
/// with `defmt-conduit`; room for 8 frames).
pub type DefmtSubscription = Subscription<DefmtFrames, M, 8, 128>;
/// Lines or frames received, shared between the session and its driver.
type Received<T> = Arc<Mutex<Vec<T>>>;

/// How the session ended, once it has.
type Ended = embassy_sync::signal::Signal<M, Result<(), SessionError>>;

/// Runs one session of a [`HostSession`]: the stable conduit's driver and
/// the calls over it. Run it beside the session (a simulation polls it
/// with the device in the same process).
pub struct HostDriver {
    driver: StableDriver,
    conduit: HostConduit,
    calls: Arc<HostCalls>,
    telemetry: Arc<Telemetry_>,
    telemetry_sub: Arc<TelemetrySubscription>,
    log_sub: Arc<LogSubscription>,
    log: Received<String>,
    defmt_sub: Arc<DefmtSubscription>,
    defmt: Received<Vec<u8>>,
    ended: Arc<Ended>,
}

impl HostDriver {
    /// Runs the session on links from `source` until it ends; `rng` makes
    /// resume keys.
    pub async fn run<L: LinkSource, R: CryptoRng, C: Clock + Clone>(
        self,
        source: L,
        rng: R,
        clock: C,
    ) -> Result<(), SessionError> {
        let time = clock.clone();
        let mut server = std::pin::pin!(
            Server::new()
                .serve::<HostTime, _>(move |_| Ok(time.now().as_millis()))
                .subscribe(&*self.telemetry_sub)
                .subscribe(&*self.log_sub)
                .subscribe(&*self.defmt_sub)
        );
        let session = embassy_futures::join::join(
            self.driver.run(source, rng, clock.clone()),
            vox_rpc::run(self.conduit, &*self.calls, server.as_mut(), clock),
        );
        let telemetry = async {
            let mut samples = self.telemetry_sub.samples();
            loop {
                let received = samples.next().await;
                if received.get().is_none() {
                    self.telemetry.wrong.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                self.telemetry.check(received.seq(), received.possibly_duplicate());
            }
        };
        let log = async {
            let mut lines = self.log_sub.samples();
            loop {
                let line = lines.next().await;
                if let Some(text) = line.get() {
                    self.log.lock().unwrap_or_else(|e| e.into_inner()).push(text.to_owned());
                }
            }
        };
        let defmt = async {
            let mut frames = self.defmt_sub.samples();
            loop {
                let frame = frames.next().await;
                if let Some(bytes) = frame.get() {
                    self.defmt.lock().unwrap_or_else(|e| e.into_inner()).push(bytes.to_vec());
                }
            }
        };
        let readers = embassy_futures::join::join3(telemetry, log, defmt);
        let (driven, _) = match select(session, readers).await {
            Either::First(ended) => ended,
            Either::Second(never) => match never {},
        };
        self.ended.signal(driven);
        driven
    }
}

/// What [`HostSession::exercise`] asks of the device.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Calls to make (ids continue across runs).
    pub requests: u32,
    /// Payload length of echo calls.
    pub echo_len: usize,
    /// Only echo calls (a throughput run) instead of a mix of set-output,
    /// read-sensor and echo.
    pub only_echo: bool,
    /// Wait until at least this many telemetry samples arrived in all.
    pub min_telemetry: u32,
    /// Calls in flight at once (one task each).
    pub window: u32,
    /// Give up after this long (also each call's deadline).
    pub limit: Duration,
}

/// What happened during [`HostSession::exercise`].
#[derive(Debug, Clone)]
pub struct ExerciseReport {
    /// Calls made.
    pub requests: u32,
    /// Correct answers.
    pub replies: u32,
    /// Telemetry samples received in this session so far, in order, once
    /// each.
    pub telemetry: u32,
    /// Wrong answers, failed calls, or samples out of order or repeated
    /// (must be 0).
    pub wrong: u32,
    /// Echo payload bytes that came back.
    pub echoed_bytes: u64,
    /// From the first call to the last answer.
    pub elapsed: Duration,
    /// Why the session ended during the run, if it did.
    pub ended: Option<Stopped>,
    /// The last call that failed, and how (a test prints it).
    pub last_failure: Option<CallError>,
}

/// One session with the device: the host's conduit (acceptor role) and a
/// client of the device's endpoints, on clock `C`.
pub struct HostSession<C: Clock = TokioClock> {
    client: DeviceClient<C>,
    stats: StableStatsHandle<HostStorage>,
    telemetry: Arc<Telemetry_>,
    log: Received<String>,
    defmt: Received<Vec<u8>>,
    ended: Arc<Ended>,
    /// The driver's task, when the session spawned it on tokio.
    driver: Option<JoinHandle<Result<(), SessionError>>>,
    clock: C,
    next_id: u32,
}

/// The call with id `id`: a deterministic mix of the three endpoints.
enum Call<'p> {
    SetOutput(Pin),
    ReadSensor(u8),
    Echo(&'p [u8]),
}

fn call_for(id: u32, payload: &[u8], only_echo: bool) -> Call<'_> {
    match if only_echo { 2 } else { id % 3 } {
        0 => Call::SetOutput(Pin { pin: (id % 40) as u8, high: id.is_multiple_of(2) }),
        1 => Call::ReadSensor((id % 8) as u8),
        _ => Call::Echo(payload.get(..(id as usize % (payload.len() + 1)).max(1)).unwrap_or(payload)),
    }
}

impl HostSession {
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
    /// `driver.run(links, rng, clock)` beside the session.
    pub fn new(clock: C) -> Result<(Self, HostDriver), ConfigError> {
        let (conduit, driver) = HostConduit::acceptor(Arc::new(HostStorage::new()), UART_CONFIG)?;
        let stats = conduit.stats_handle();
        let calls = Arc::new(HostCalls::new());
        let telemetry = Arc::new(Telemetry_::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let defmt = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Ended::new());
        let session = Self {
            client: Client::new(calls.clone(), clock.clone()),
            stats,
            telemetry: telemetry.clone(),
            log: log.clone(),
            defmt: defmt.clone(),
            ended: ended.clone(),
            driver: None,
            clock,
            next_id: 0,
        };
        let (telemetry_sub, log_sub, defmt_sub) =
            (Arc::new(Subscription::new()), Arc::new(Subscription::new()), Arc::new(Subscription::new()));
        let driver =
            HostDriver { driver, conduit, calls, telemetry, telemetry_sub, log_sub, log, defmt_sub, defmt, ended };
        Ok((session, driver))
    }

    /// Counters of the host's conduit.
    pub fn stats(&self) -> StableStats {
        self.stats.get()
    }

    /// The device's log lines received so far (and clears them).
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The device's defmt frames received so far (and clears them): a
    /// firmware built with `defmt-conduit` publishes them; decode them
    /// with [`DefmtTable`](crate::defmt_frames::DefmtTable) and its ELF.
    pub fn take_defmt_frames(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.defmt.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A client of the device's endpoints (clone it into many tasks).
    pub fn client(&self) -> &DeviceClient<C> {
        &self.client
    }

    /// Makes `work.requests` calls, `work.window` at once, and checks that
    /// every answer is the device's correct one, and that telemetry
    /// sequence numbers have no gap and no repeat.
    pub async fn exercise(&mut self, work: Workload) -> ExerciseReport {
        let payload: Vec<u8> = (0..work.echo_len).map(|i| (i * 7 + 3) as u8).collect();
        let first = self.next_id;
        let end = first + work.requests;
        let next = std::cell::Cell::new(first);
        let replies = std::cell::Cell::new(0u32);
        let wrong = std::cell::Cell::new(0u32);
        let echoed = std::cell::Cell::new(0u64);
        let failed: std::cell::RefCell<Option<CallError>> = std::cell::RefCell::new(None);
        let clock = self.clock.clone();
        let start = clock.now();
        let client = &self.client;
        let worker = || async {
            loop {
                let id = next.get();
                if id >= end {
                    return;
                }
                next.set(id + 1);
                let ok = match call_for(id, &payload, work.only_echo) {
                    Call::SetOutput(pin) => {
                        let expected: Result<(), String> =
                            if pin.pin < 32 { Ok(()) } else { Err("no such pin".to_owned()) };
                        let got = client.call_with::<SetOutput, _>(pin, work.limit, |r| r.map_err(str::to_owned)).await;
                        got.map_err(|e| *failed.borrow_mut() = Some(e)).is_ok_and(|g| g == expected)
                    }
                    Call::ReadSensor(sensor) => {
                        let got = client.call::<ReadSensor>(sensor, work.limit).await;
                        got.map_err(|e| *failed.borrow_mut() = Some(e.map_handler(|n| match n {})))
                            .is_ok_and(|v| v == sensor_value(sensor))
                    }
                    Call::Echo(bytes) => {
                        let got =
                            client.call_with::<Echo, _>(bytes, work.limit, |r| r.is_ok_and(|back| back == bytes)).await;
                        if got == Ok(true) {
                            echoed.set(echoed.get() + bytes.len() as u64);
                        }
                        got.map_err(|e| *failed.borrow_mut() = Some(e)).unwrap_or(false)
                    }
                };
                if ok { replies.set(replies.get() + 1) } else { wrong.set(wrong.get() + 1) }
            }
        };
        let workers = futures::future::join_all((0..work.window.max(1)).map(|_| worker()));
        let telemetry = &self.telemetry;
        let samples = async {
            while telemetry.next.load(Ordering::Relaxed) < work.min_telemetry {
                clock.sleep(Duration::from_millis(10)).await;
            }
        };
        let work_done = async {
            workers.await;
            let elapsed = clock.now() - start;
            samples.await;
            elapsed
        };
        let (elapsed, timed_out) = match select(work_done, clock.sleep(work.limit)).await {
            Either::First(elapsed) => (elapsed, false),
            Either::Second(()) => (clock.now() - start, true),
        };
        self.next_id = end;
        let last_failure = failed.into_inner();
        let lost =
            last_failure.clone().filter(|e| matches!(e, CallError::SessionLost { .. } | CallError::LinkLost { .. }));
        let ended = match (lost, self.ended.try_take()) {
            (_, Some(Err(e))) => Some(Stopped::Session(e)),
            (Some(e), _) => Some(Stopped::Failed(e.to_string())),
            _ if timed_out => Some(Stopped::Failed(format!("the work did not finish within {:?}", work.limit))),
            _ => None,
        };
        ExerciseReport {
            requests: work.requests,
            replies: replies.get(),
            telemetry: self.telemetry.next.load(Ordering::Relaxed),
            wrong: wrong.get() + self.telemetry.wrong.load(Ordering::Relaxed),
            echoed_bytes: echoed.get(),
            elapsed,
            ended,
            last_failure,
        }
    }

    /// Waits until the session ends, at most `limit`; returns why, or
    /// `None` on timeout.
    pub async fn until_ended(&mut self, limit: Duration) -> Option<Stopped> {
        match select(self.ended.wait(), self.clock.sleep(limit)).await {
            Either::First(Err(e)) => Some(Stopped::Session(e)),
            Either::First(Ok(())) => Some(Stopped::PeerClosed),
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
