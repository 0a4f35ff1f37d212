//! Calls to the firmware in QEMU (lm3s6965, the emulated UART on a
//! loopback TCP chardev): 8 host tasks calling for 10 s, the demo's mix
//! (set an output, read a sensor, echo 48 bytes), in the same run:
//! - through `vox-rpc` over a `StableConduit` against the `device`
//!   firmware;
//! - through the hand-written request matching it replaced (a table of
//!   pending ids, a reader task routing replies) against the
//!   `device_hand` firmware;
//! - through `vox-rpc` over a `BareConduit` (the same framed link on the
//!   same UART, no seq/ack/replay) against the `device_bare` firmware.
//!
//! Prints calls/s, p50 and p99 latency, the ratios rpc/hand and
//! stable/bare, and the clock bound ε the rpc layer reports.
//!
//! `cargo bench -p vox-tests --bench qemu_calls [-- SECONDS]`

use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vox_conduit_bare::BareConduit;
use vox_conduit_stable::{StableConduit, StableStorage};
use vox_demo_host::device_host::{
    DefmtSubscription, DeviceClient, HostCalls, HostLink, LogSubscription, TelemetrySubscription,
};
use vox_demo_protocol::{
    Command, DemoFamily, DemoMsg, Echo, HostTime, Outcome, Pin, ReadSensor, SetOutput, UART_CONFIG,
};
use vox_link_embedded::host::TokioClock;
use vox_qemu_rig::qemu::{Board, Qemu, Uart, build_firmware, ensure_qemu};
use vox_rpc::{Client, RpcFamily, Server};
use vox_tests::tcp_serial_port::TcpSerialPort;
use vox_types::{Clock, Conduit, ConduitRx, ConduitTx, ConduitTxPermit, LinkSource, SessionRole};

const TASKS: u32 = 8;
const LIMIT: Duration = Duration::from_secs(300);
const PAYLOAD: [u8; 48] = [0x5a; 48];

struct Run {
    calls: u64,
    failed: u64,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p) as usize).copied().unwrap_or_default()
    }
}

/// Call `i` of a task: the demo's mix.
fn which(i: u64) -> u8 {
    (i % 3) as u8
}

async fn start(bin: &str, listener_port: u16) -> Qemu {
    let elf = build_firmware(bin, Board::Lm3s6965, &[]).unwrap();
    Qemu::start(&elf, Board::Lm3s6965, Uart::Tcp { port: listener_port, reconnect: false }, LIMIT, false).await.unwrap()
}

/// The demo's call mix from [`TASKS`] tasks on `client` for `seconds`.
async fn drive(name: &str, client: &DeviceClient<TokioClock>, seconds: u64) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut lat, mut failed, mut i) = (Vec::new(), HashMap::<String, u64>::new(), u64::from(t));
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let timeout = Duration::from_secs(2);
                    let ok: Result<bool, String> = match which(i) {
                        0 => client
                            .call_with::<SetOutput, _>(Pin { pin: (i % 32) as u8, high: true }, timeout, |r| r.is_ok())
                            .await
                            .map_err(|e| format!("{e:?}")),
                        1 => client
                            .call::<ReadSensor>((i % 8) as u8, timeout)
                            .await
                            .map(|_| true)
                            .map_err(|e| format!("{e:?}")),
                        _ => client
                            .call_with::<Echo, _>(&PAYLOAD, timeout, |r| r.is_ok_and(|b| b.len() == 48))
                            .await
                            .map_err(|e| format!("{e:?}")),
                    };
                    match ok {
                        Ok(true) => lat.push(t0.elapsed()),
                        Ok(false) => *failed.entry("wrong answer".to_string()).or_insert(0) += 1,
                        Err(e) => *failed.entry(e).or_insert(0) += 1,
                    }
                    i += u64::from(TASKS);
                }
                (lat, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut run = Run { calls: 0, failed: 0, secs: 0.0, latencies: Vec::new() };
    let mut why: HashMap<String, u64> = HashMap::new();
    for t in tasks {
        let (lat, failed) = t.await.unwrap();
        run.calls += lat.len() as u64;
        for (e, n) in failed {
            run.failed += n;
            *why.entry(e).or_insert(0) += n;
        }
        run.latencies.extend(lat);
    }
    run.secs = started.elapsed().as_secs_f64();
    if !why.is_empty() {
        println!("{name}: failed calls by reason: {why:?}");
    }
    run
}

/// `vox-rpc` over the stable conduit (the demo's host session) against the
/// `device` firmware.
async fn rpc(seconds: u64) -> (Run, Option<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serial = TcpSerialPort::spawn(listener);
    let _qemu = start("device", port).await;
    let session = serial.session().unwrap();
    let client = session.client().clone();
    // Warm up: the first call waits for the session and the clock samples.
    client.call::<ReadSensor>(1, Duration::from_secs(30)).await.unwrap();
    let run = drive("device", &client, seconds).await;
    (run, client.epsilon())
}

/// `vox-rpc` over a bare conduit against the `device_bare` firmware: one
/// `BareConduit` (acceptor, as the stable host) on the first framed link
/// of the serial connection, serving what the stable host serves (its
/// clock) and subscribed to the same topics (telemetry, log, defmt
/// frames), drained as they come.
async fn bare(seconds: u64) -> (Run, Option<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serial = TcpSerialPort::spawn(listener);
    let _qemu = start("device_bare", port).await;
    let calls = Arc::new(HostCalls::new());
    let client: DeviceClient<TokioClock> = Client::new(calls.clone(), TokioClock);
    let links = serial.links.clone();
    let session = tokio::spawn(async move {
        let link = links.receiver().next_link().await.unwrap();
        let conduit =
            BareConduit::<HostLink, RpcFamily>::connect_within(link, SessionRole::Acceptor, TokioClock, 30_000)
                .await
                .unwrap();
        let (telemetry, log, defmt) = (TelemetrySubscription::new(), LogSubscription::new(), DefmtSubscription::new());
        let mut server = std::pin::pin!(
            Server::new()
                .serve::<HostTime, _>(|_| Ok(TokioClock.now().as_millis()))
                .subscribe(&telemetry)
                .subscribe(&log)
                .subscribe(&defmt)
        );
        // Each sample is credited back as soon as it is dropped.
        let drain = embassy_futures::join::join3(
            async {
                let mut samples = telemetry.samples();
                loop {
                    drop(samples.next().await);
                }
            },
            async {
                let mut lines = log.samples();
                loop {
                    drop(lines.next().await);
                }
            },
            async {
                let mut frames = defmt.samples();
                loop {
                    drop(frames.next().await);
                }
            },
        );
        match select(vox_rpc::run(conduit, &*calls, server.as_mut(), TokioClock), drain).await {
            Either::First(ended) => ended,
            Either::Second(never) => match never {},
        }
    });
    client.call::<ReadSensor>(1, Duration::from_secs(30)).await.unwrap();
    let run = drive("device_bare", &client, seconds).await;
    session.abort();
    (run, client.epsilon())
}

type HandStorage = StableStorage<M, 4096, 64, 4096, 64>;

/// The hand-written host: ids from a counter, a table of pending ids, one
/// reader task routing replies, a timeout per call.
async fn hand(seconds: u64) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serial = TcpSerialPort::spawn(listener);
    let _qemu = start("device_hand", port).await;
    let (conduit, driver) =
        StableConduit::<DemoFamily, _>::acceptor(Arc::new(HandStorage::new()), UART_CONFIG).unwrap();
    let links = serial.links.clone();
    tokio::spawn(async move { driver.run(links.receiver(), ChaCha20Rng::from_os_rng(), TokioClock).await });
    let (tx, mut rx) = conduit.split();
    let tx = Arc::new(tx);
    let pending: Arc<Mutex<HashMap<u32, oneshot::Sender<bool>>>> = Arc::default();
    let reader = {
        let pending = pending.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = rx.recv().await {
                if let DemoMsg::Reply { id, outcome } = msg.get::<DemoFamily>() {
                    let ok = !matches!(outcome, Outcome::Failed(_));
                    if let Some(waiter) = pending.lock().unwrap().remove(id) {
                        let _ = waiter.send(ok);
                    }
                }
            }
        })
    };
    let next_id = Arc::new(AtomicU32::new(0));
    let call = move |i: u64| {
        let (tx, pending, next_id) = (tx.clone(), pending.clone(), next_id.clone());
        async move {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let (done, wait) = oneshot::channel();
            pending.lock().unwrap().insert(id, done);
            let command = match which(i) {
                0 => Command::SetOutput { pin: (i % 32) as u8, high: true },
                1 => Command::ReadSensor { sensor: (i % 8) as u8 },
                _ => Command::Echo(&PAYLOAD),
            };
            let sent = async { tx.reserve().await.ok()?.send(DemoMsg::Request { id, command }).ok() };
            let answered = async {
                sent.await?;
                wait.await.ok()
            };
            let ok = tokio::time::timeout(Duration::from_secs(2), answered).await.ok().flatten().unwrap_or(false);
            pending.lock().unwrap().remove(&id);
            ok
        }
    };
    // Warm up: the first reply comes once the session is up.
    while !call(1).await {}
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (stop, call) = (stop.clone(), call.clone());
            tokio::spawn(async move {
                let (mut lat, mut failed, mut i) = (Vec::new(), 0u64, u64::from(t));
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    if call(i).await {
                        lat.push(t0.elapsed())
                    } else {
                        failed += 1
                    }
                    i += u64::from(TASKS);
                }
                (lat, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut run = Run { calls: 0, failed: 0, secs: 0.0, latencies: Vec::new() };
    for t in tasks {
        let (lat, failed) = t.await.unwrap();
        run.calls += lat.len() as u64;
        run.failed += failed;
        run.latencies.extend(lat);
    }
    run.secs = started.elapsed().as_secs_f64();
    reader.abort();
    run
}

fn print_row(name: &str, r: &Run) {
    println!(
        "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} |",
        r.calls as f64 / r.secs,
        r.percentile(0.5).as_secs_f64() * 1e3,
        r.percentile(0.99).as_secs_f64() * 1e3,
        r.failed
    );
}

fn rate(r: &Run) -> f64 {
    r.calls as f64 / r.secs
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    ensure_qemu().unwrap();
    println!(
        "calls to the firmware in QEMU lm3s6965 over the emulated UART: {TASKS} host tasks for {seconds} s each, the demo's mix"
    );
    let (rpc_run, epsilon) = rpc(seconds).await;
    let hand_run = hand(seconds).await;
    let (bare_run, bare_epsilon) = bare(seconds).await;
    println!();
    println!("| device | calls/s | p50 | p99 | failed |");
    println!("|--------|--------:|----:|----:|-------:|");
    print_row("vox-rpc, stable conduit (`device`)", &rpc_run);
    print_row("hand-written, stable conduit (`device_hand`)", &hand_run);
    print_row("vox-rpc, bare conduit (`device_bare`)", &bare_run);
    let p99 = |a: &Run, b: &Run| a.percentile(0.99).as_secs_f64() / b.percentile(0.99).as_secs_f64().max(1e-9);
    println!();
    println!(
        "rpc/hand: calls/s {:.2}, p99 {:.2} (goal: within 10 %)",
        rate(&rpc_run) / rate(&hand_run),
        p99(&rpc_run, &hand_run)
    );
    println!("stable/bare calls per second: {:.2} (goal >= 0.8)", rate(&rpc_run) / rate(&bare_run));
    println!("stable/bare p99: {:.2}", p99(&rpc_run, &bare_run));
    let show = |e: Option<u64>| e.map_or("none".to_string(), |e| format!("{e} ms"));
    println!("ε reported by the rpc client: stable {}, bare {}", show(epsilon), show(bare_epsilon));
}
