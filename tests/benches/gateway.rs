//! A gateway: one `StableAcceptor` over loopback TCP in a process of its
//! own for each size, and N initiators in another (both this program
//! again), all connecting at once, then each sending one
//! request a second for 20 s. Prints how long the connection burst took
//! (every initiator held) and the acceptor's CPU over it; then the acceptor's CPU (% of one core,
//! and µs per frame, with the kernel's part of it), server-side latency (request received to reply
//! committed, p50 and p99), the clients' end-to-end p99, and RSS per
//! session, for 1,000 and 10,000 initiators.
//!
//! Configuration (stated, as the issue asks): the acceptor on one tokio
//! `current_thread` runtime (one core per acceptor: a multi-thread runtime
//! spends more on workers waking each other than it gains at this load),
//! keepalive 5 s, timeout 15 s, links of 2 slots of 256 bytes each way
//! (`TcpListenerSource::<2, 256>`), stable storage of 1 KiB / 8 messages
//! each way, 200-byte messages.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vox_conduit_stable::{
    AcceptorConfig, StableAcceptor, StableConduit, StableConfig, StableStatsHandle, StableStorage,
};
use vox_link_embedded::host::{TcpDialer, TcpLink, TcpListenerSource, TokioClock};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

type M = CriticalSectionRawMutex;
type Storage = StableStorage<M, 1024, 8, 1024, 8>;
type Link = TcpLink<2, 256>;

/// A request or its reply: an id and the client's send time (µs).
#[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
struct Req {
    id: u32,
    at_us: u64,
}
vox_types::msg_family!(GwFamily => Req);

const CONFIG: StableConfig = StableConfig {
    keepalive_ms: 5_000,
    timeout_ms: 15_000,
    linger_ms: 15_000,
    connect_timeout_ms: 60_000,
    ..StableConfig::DEFAULT
};
const SECONDS: u64 = 20;

fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes into the `rlimit` we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `setrlimit` reads the `rlimit` we own.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    limit.rlim_cur
}

/// This process's CPU time: user + system, and system alone (the kernel's
/// part: system calls on loopback TCP, epoll).
fn cpu_times() -> (Duration, Duration) {
    // SAFETY: `rusage` is plain integers, for which all zero bits are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` writes into the `rusage` we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    (tv(usage.ru_utime) + tv(usage.ru_stime), tv(usage.ru_stime))
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    cpu_times().0
}

fn rss_kib() -> u64 {
    // SAFETY: `sysconf` only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * page / 1024
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Microseconds of the system's monotonic clock: the same in both
/// processes, so the gateway can tell how long ago a client sent.
fn mono_us() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes into the `timespec` we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

/// The clients' process: N initiators, one request a second each.
async fn clients(n: usize, addr: std::net::SocketAddr) {
    let rtts = Arc::new(Mutex::new(Vec::new()));
    let replies = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..n {
        let (rtts, replies) = (rtts.clone(), replies.clone());
        tasks.push(tokio::spawn(async move {
            let (conduit, driver) =
                StableConduit::<GwFamily, Storage>::initiator(Arc::new(Storage::new()), CONFIG).unwrap();
            let dialer = TcpDialer::<2, 256>::sized(addr);
            let driving = tokio::spawn(driver.run(dialer, TokioClock));
            let (tx, mut rx) = conduit.split();
            // Spread the requests over the second.
            tokio::time::sleep(Duration::from_micros((c as u64 * 997) % 1_000_000)).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for id in 0..SECONDS as u32 {
                tick.tick().await;
                let sent = mono_us();
                let Ok(permit) = tx.reserve().await else { break };
                if permit.send(Req { id, at_us: sent }).is_err() {
                    break;
                }
                match rx.recv().await {
                    // After the first 5 s (10,000 clients connecting at once).
                    Ok(Some(reply)) if reply.get::<GwFamily>().id == id => {
                        replies.fetch_add(1, Ordering::Relaxed);
                        if id >= 5 {
                            rtts.lock().unwrap().push(mono_us() - sent);
                        }
                    }
                    _ => break,
                }
            }
            driving.abort();
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut rtts = rtts.lock().unwrap().clone();
    rtts.sort_unstable();
    println!(
        "clients: replies {} e2e_p50_us {} e2e_p99_us {}",
        replies.load(Ordering::Relaxed),
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99)
    );
}

struct Row {
    n: usize,
    cpu_pct: f64,
    us_per_frame: f64,
    /// Of which in the kernel (system calls: loopback TCP, epoll).
    kernel_us_per_frame: f64,
    p50_us: u64,
    p99_us: u64,
    handler_p99_us: u64,
    e2e_p99_us: u64,
    rss_per_session_kb: f64,
    replies: u64,
    /// Sessions the gateway held, and requests answered in its window.
    connected: usize,
    /// The connection burst: every initiator held after this long, and
    /// the acceptor process's CPU over it.
    held_after: Duration,
    burst_cpu: Duration,
    in_window: usize,
}

/// The gateway's side for `n` initiators.
async fn gateway(n: usize) -> Row {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4096).unwrap();
    let addr = listener.local_addr().unwrap();
    let rss_before = rss_kib();
    let (mut acceptor, runner) = StableAcceptor::<GwFamily, Storage, M, Link>::new(
        TcpListenerSource::<2, 256>::sized(listener),
        TokioClock,
        CONFIG,
        AcceptorConfig::with_sessions(n),
    )
    .unwrap();
    tokio::spawn(runner.run());
    let stats: Arc<Mutex<Vec<StableStatsHandle<Storage>>>> = Arc::default();
    // (received → committed, sent by the client → committed), µs.
    let latencies: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let sessions = Arc::new(AtomicUsize::new(0));
    {
        let (stats, latencies, sessions) = (stats.clone(), latencies.clone(), sessions.clone());
        tokio::spawn(async move {
            let mut seed = 0u64;
            while let Ok((conduit, driver, links)) = acceptor.accept().await {
                seed += 1;
                let rng: rand_chacha::ChaCha8Rng = rand_chacha::rand_core::SeedableRng::seed_from_u64(seed);
                stats.lock().unwrap().push(conduit.stats_handle());
                sessions.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(driver.run(links, rng, TokioClock));
                let latencies = latencies.clone();
                tokio::spawn(async move {
                    let (tx, mut rx) = conduit.split();
                    while let Ok(Some(m)) = rx.recv().await {
                        let arrived = Instant::now();
                        let Req { id, at_us } = *m.get::<GwFamily>();
                        drop(m);
                        let Ok(permit) = tx.reserve().await else { return };
                        if permit.send(Req { id, at_us }).is_err() {
                            return;
                        }
                        let handler = arrived.elapsed().as_micros() as u64;
                        latencies.lock().unwrap().push((handler, mono_us().saturating_sub(at_us)));
                    }
                });
            }
        });
    }
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .env_remove("VOX_GATEWAY_SIZE")
        .env("VOX_GATEWAY_CLIENTS", n.to_string())
        .env("VOX_GATEWAY_ADDR", addr.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (waiting, burst_cpu) = (Instant::now(), cpu_time());
    while sessions.load(Ordering::Relaxed) < n && waiting.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (held_after, burst_cpu) = (waiting.elapsed(), cpu_time() - burst_cpu);
    // Steady state: every client has connected; measure 10 s of it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frames = |stats: &Mutex<Vec<StableStatsHandle<Storage>>>| {
        stats.lock().unwrap().iter().map(|h| h.get()).map(|s| s.frames_sent + s.frames_received).sum::<u64>()
    };
    latencies.lock().unwrap().clear();
    let ((cpu0, sys0), wall0, frames0) = (cpu_times(), Instant::now(), frames(&stats));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ((cpu1, sys1), wall1, frames1) = (cpu_times(), Instant::now(), frames(&stats));
    let rss = rss_kib().saturating_sub(rss_before);
    let connected = sessions.load(Ordering::Relaxed);
    let (mut handler, mut sent): (Vec<u64>, Vec<u64>) = latencies.lock().unwrap().iter().copied().unzip();
    handler.sort_unstable();
    sent.sort_unstable();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let field = |name: &str| {
        text.split_whitespace().skip_while(|w| *w != name).nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    };
    let cpu = (cpu1 - cpu0).as_secs_f64();
    let frames = (frames1 - frames0).max(1);
    Row {
        n,
        cpu_pct: 100.0 * cpu / (wall1 - wall0).as_secs_f64(),
        us_per_frame: cpu * 1e6 / frames as f64,
        kernel_us_per_frame: (sys1 - sys0).as_secs_f64() * 1e6 / frames as f64,
        p50_us: percentile(&sent, 0.5),
        p99_us: percentile(&sent, 0.99),
        handler_p99_us: percentile(&handler, 0.99),
        e2e_p99_us: field("e2e_p99_us"),
        rss_per_session_kb: rss as f64 * 1.024 / connected.max(1) as f64,
        connected,
        held_after,
        burst_cpu,
        in_window: sent.len(),
        replies: field("replies"),
    }
}

fn main() {
    let open = raise_open_files();
    if let Ok(n) = std::env::var("VOX_GATEWAY_CLIENTS") {
        let n: usize = n.parse().unwrap();
        let addr = std::env::var("VOX_GATEWAY_ADDR").unwrap().parse().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(clients(n, addr));
        return;
    }
    // Each size's gateway in a fresh process of its own (this program
    // again): a run in a process where an earlier one freed its heap
    // would reuse it, which hides that run's RSS.
    if let Ok(n) = std::env::var("VOX_GATEWAY_SIZE") {
        let n: usize = n.parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let r = rt.block_on(gateway(n));
        println!(
            "| {} ({}) | {:.2} s ({:.2} s) | {:.1} % | {:.2} ({:.2}) | {:.2} ms | {:.2} ms | {} µs | {:.2} ms | {:.1} kB | {} ({}) |",
            r.n,
            r.connected,
            r.held_after.as_secs_f64(),
            r.burst_cpu.as_secs_f64(),
            r.cpu_pct,
            r.us_per_frame,
            r.kernel_us_per_frame,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.handler_p99_us,
            r.e2e_p99_us as f64 / 1000.0,
            r.rss_per_session_kb,
            r.replies,
            r.in_window
        );
        return;
    }
    let sizes: Vec<usize> = [10_000, 1_000].into_iter().filter(|&n| n as u64 + 256 < open).collect();
    println!(
        "gateway: one StableAcceptor over loopback TCP, initiators in a second process, 1 request/s each for {SECONDS} s"
    );
    println!(
        "(acceptor on one current_thread runtime; keepalive 5 s, timeout 15 s, links 2 x 256 B each way, stable storage 1 KiB / 8 messages each way)"
    );
    println!(
        "server: from the client's send (the same monotonic clock) to the reply committed; handler: from `recv` to the reply committed"
    );
    println!();
    println!(
        "| initiators (held) | all held after (acceptor CPU over the burst) | acceptor process CPU (% of a core, handlers included) | CPU µs / frame (of which in the kernel) | server p50 | server p99 | handler p99 | end-to-end p99 | RSS / session | answered (in the 10 s window) |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let exe = std::env::current_exe().unwrap();
    for n in sizes {
        let status = Command::new(&exe).env("VOX_GATEWAY_SIZE", n.to_string()).status().unwrap();
        assert!(status.success(), "the gateway for {n} initiators failed: {status}");
    }
    println!();
    println!(
        "goals at 10,000: CPU <= 25 % of a core, <= 4 µs per frame, server p99 <= 10 ms, RSS <= 24 kB per session"
    );
}
