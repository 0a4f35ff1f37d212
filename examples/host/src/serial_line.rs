//! A host and a device talking over a noisy in-memory serial line:
//! `StableConduit` over `FramedLink`s that are reattached to the same byte
//! stream after every link death. Used by the README demo and the chaos
//! test.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embedded_io_async::Write;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use vox_conduit_stable::{
    ConfigError, SessionError, StableConduit, StableConfig, StableStats, StableStatsHandle, StableStorage,
};
use vox_demo_protocol::{Command, DemoFamily, DemoMsg};
use vox_link_embedded::LinkChannel;
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::{
    FramedLink, FramedLinkStorage, FramedPort,
    framed::FramedStats,
    sim::{BytePipe, LineCutter, NoiseCounts, NoiseRates, NoisyWriter, PipeReader, PipeWriter},
};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

type M = CriticalSectionRawMutex;
type Line = BytePipe<M, 2048>;
/// The framed link on each end of the line.
pub type SerialLink = FramedLink<M, 4, 256>;
type Storage = StableStorage<M, 4096, 32, 2048, 16>;
type Conduit_ = StableConduit<DemoFamily, Storage>;
type Stats = StableStatsHandle<Storage>;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct LineConfig {
    /// Messages each side sends.
    pub messages: u32,
    /// Corruption rate of the line, in events per million bytes (split
    /// evenly between flipped, dropped and inserted bytes).
    pub noise_ppm: u32,
    /// Cut the line (lose a burst of bytes) about every this many frames
    /// each way; 0 never.
    pub cut_every_frames: u32,
    /// Seed of the noise.
    pub seed: u64,
    /// Print progress on stderr: a line redrawn in place on a terminal,
    /// a plain line every two seconds otherwise (a log, a pipe).
    pub progress: bool,
    /// Give up after this long; `None`: [`LineConfig::default_limit`].
    pub time_limit: Option<Duration>,
}

impl LineConfig {
    /// The time a run may take unless told otherwise: 30 s plus 1 ms per
    /// message each way, so a long run is never cut short by a fixed limit
    /// (the demo delivers about 100,000 messages a second here).
    pub fn default_limit(&self) -> Duration {
        Duration::from_secs(30) + Duration::from_millis(u64::from(self.messages))
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct LineReport {
    /// Messages each side sent.
    pub sent: u32,
    /// Host → device messages delivered, in order, once.
    pub delivered_to_device: u32,
    /// Device → host messages delivered, in order, once.
    pub delivered_to_host: u32,
    /// Messages that arrived out of order or twice (must be 0).
    pub misordered_or_duplicated: u32,
    /// How each session ended.
    /// (`None`: the driver did not finish in time.)
    pub host_result: Option<Result<(), SessionError>>,
    /// How each session ended.
    pub device_result: Option<Result<(), SessionError>>,
    /// Host conduit counters.
    pub host: StableStats,
    /// Device conduit counters.
    pub device: StableStats,
    /// Framed-link counters summed over both ends and all attachments.
    pub framed: FramedStats,
    /// Noise injected on both directions.
    pub noise: NoiseCounts,
    /// Line cuts made.
    pub cuts: u32,
    /// Wall time.
    pub elapsed: Duration,
}

/// The framed links' storage on one end of the line, reused for every
/// link: its counters add up across them.
type PortStorage = FramedLinkStorage<M, 4, 256>;

/// One end of the serial port: a fresh framed link on the same byte stream
/// whenever the previous one died, handed to the conduit, until `stop`.
async fn serial_port<W: Write>(
    channel: Arc<LinkChannel<M, SerialLink>>,
    mut reader: PipeReader<Arc<Line>>,
    mut writer: W,
    storage: Arc<PortStorage>,
    stop: Arc<AtomicBool>,
) -> W {
    let port = FramedPort::new(storage);
    let serving = port.serve(&mut reader, &mut writer, &TokioClock, |link| channel.offer(link));
    let stopped = async {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = embassy_futures::select::select(serving, stopped).await;
    writer
}

/// Sends `n` messages of the side's kind, then closes.
async fn send_all(tx: &impl ConduitTx<Msg = DemoFamily>, n: u32, host: bool) -> Result<(), String> {
    let payload = [0x5Au8; 24];
    for id in 0..n {
        let msg = if host {
            DemoMsg::Request { id, command: Command::Echo(&payload) }
        } else {
            DemoMsg::Telemetry { seq: id, millivolts: 3300 - (id % 100) as u16, label: "vbat" }
        };
        tx.reserve().await.map_err(|e| e.to_string())?.send(msg).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Receives until the peer closes; counts in-order ids and anything else.
async fn receive_all(rx: &mut impl ConduitRx<Msg = DemoFamily>, counter: &AtomicU32, bad: &AtomicU32) {
    while let Ok(Some(m)) = rx.recv().await {
        let id = match m.get::<DemoFamily>() {
            DemoMsg::Request { id, .. } | DemoMsg::Telemetry { seq: id, .. } | DemoMsg::Reply { id, .. } => *id,
        };
        if id == counter.load(Ordering::Relaxed) {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            bad.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn progress_line(sent: u32, to_device: u32, to_host: u32, host: &Stats, device: &Stats, start: Instant) -> String {
    let (h, d) = (host.get(), device.get());
    format!(
        "  host->device {to_device:>7}/{sent}  device->host {to_host:>7}/{sent}  reattachments {:>4}  replays {:>5}  {:>5.1} s",
        h.reattachments + d.reattachments,
        h.replays + d.replays,
        start.elapsed().as_secs_f64()
    )
}

/// Runs the host and the device over the noisy line until both sent and
/// received everything, or 120 s pass.
pub async fn run_line(cfg: LineConfig) -> Result<LineReport, ConfigError> {
    let config = StableConfig { timeout_ms: 400, keepalive_ms: 100, linger_ms: 1200, ..StableConfig::DEFAULT };
    let (to_device_line, to_host_line) = (Arc::new(Line::new()), Arc::new(Line::new()));
    let rates = NoiseRates { flip_ppm: cfg.noise_ppm / 3, drop_ppm: cfg.noise_ppm / 3, insert_ppm: cfg.noise_ppm / 3 };
    let (host_storage, device_storage) = (Arc::new(PortStorage::new()), Arc::new(PortStorage::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // A cut loses 12 bytes: the frame after it fails its CRC.
    let writer = |line: &Arc<Line>, seed: u64| {
        LineCutter::new(NoisyWriter::new(PipeWriter(line.clone()), rates, seed), cfg.cut_every_frames, 12)
    };
    let (host_links, device_links) = (Arc::new(LinkChannel::new()), Arc::new(LinkChannel::new()));
    let host_port = tokio::spawn(serial_port(
        host_links.clone(),
        PipeReader(to_host_line.clone()),
        writer(&to_device_line, cfg.seed),
        host_storage.clone(),
        stop.clone(),
    ));
    let device_port = tokio::spawn(serial_port(
        device_links.clone(),
        PipeReader(to_device_line.clone()),
        writer(&to_host_line, cfg.seed ^ 0x9E37),
        device_storage.clone(),
        stop.clone(),
    ));

    let (host, host_driver) = Conduit_::acceptor(Arc::new(Storage::new()), config)?;
    let (device, device_driver) = Conduit_::initiator(Arc::new(Storage::new()), config)?;
    let (host_stats, device_stats) = (host.stats_handle(), device.stats_handle());
    let host_task = {
        let links = host_links.clone();
        tokio::spawn(async move {
            let rng = ChaCha20Rng::from_os_rng();
            host_driver.run(links.receiver(), rng, TokioClock).await
        })
    };
    let device_task = {
        let links = device_links.clone();
        tokio::spawn(async move { device_driver.run(links.receiver(), TokioClock).await })
    };

    let (to_device, to_host, bad) = (AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0));
    let start = Instant::now();
    let (host_tx, mut host_rx) = host.split();
    let (device_tx, mut device_rx) = device.split();
    let traffic = async {
        let host_side = async {
            let _ = send_all(&host_tx, cfg.messages, true).await;
            drop(host_tx);
        };
        let device_side = async {
            let _ = send_all(&device_tx, cfg.messages, false).await;
            drop(device_tx);
        };
        tokio::join!(
            host_side,
            device_side,
            receive_all(&mut host_rx, &to_host, &bad),
            receive_all(&mut device_rx, &to_device, &bad)
        );
    };
    // Redrawn in place only on a terminal: a log gets whole lines.
    let terminal = std::io::stderr().is_terminal();
    let progress = async {
        let every = if terminal { Duration::from_millis(200) } else { Duration::from_secs(2) };
        loop {
            tokio::time::sleep(every).await;
            if cfg.progress {
                let line = progress_line(
                    cfg.messages,
                    to_device.load(Ordering::Relaxed),
                    to_host.load(Ordering::Relaxed),
                    &host_stats,
                    &device_stats,
                    start,
                );
                if terminal {
                    eprint!("\r{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        }
    };
    let limit = cfg.time_limit.unwrap_or_else(|| cfg.default_limit());
    let _ = tokio::time::timeout(limit, async {
        tokio::select! {
            () = traffic => {},
            () = progress => {},
        }
    })
    .await;
    let elapsed = start.elapsed();
    let host_result = tokio::time::timeout(Duration::from_secs(5), host_task).await.ok().and_then(Result::ok);
    let device_result = tokio::time::timeout(Duration::from_secs(5), device_task).await.ok().and_then(Result::ok);
    if cfg.progress {
        eprintln!(
            "{}{}",
            if terminal { "\r" } else { "" },
            progress_line(
                cfg.messages,
                to_device.load(Ordering::Relaxed),
                to_host.load(Ordering::Relaxed),
                &host_stats,
                &device_stats,
                start
            )
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut noise = NoiseCounts::default();
    let mut cuts = 0;
    for port in [host_port, device_port] {
        if let Ok(Ok(w)) = tokio::time::timeout(Duration::from_secs(2), port).await {
            cuts += w.cuts();
            let n = w.inner().counts();
            noise.flipped += n.flipped;
            noise.dropped += n.dropped;
            noise.inserted += n.inserted;
        }
    }
    let mut framed = host_storage.stats();
    framed += device_storage.stats();
    Ok(LineReport {
        sent: cfg.messages,
        delivered_to_device: to_device.load(Ordering::Relaxed),
        delivered_to_host: to_host.load(Ordering::Relaxed),
        misordered_or_duplicated: bad.load(Ordering::Relaxed),
        host_result,
        device_result,
        host: host_stats.get(),
        device: device_stats.get(),
        framed,
        noise,
        cuts,
        elapsed,
    })
}
