//! Calls at a glance: a host calls the demo device from 8 tasks, each call
//! with a 200 ms deadline, across a 1.2 s cut of the serial line and a
//! device reboot, and counts what happened to every call: answered,
//! surely not run, or may have run. Nothing else is left to the user: ids,
//! matching, timeouts, dispatch and sessions after a reboot are the
//! library's.
//!
//! The device runs in this process on a simulated serial line (the "wire"
//! below). The code between the `device` markers is a whole device (on a
//! board its memory is `static`s instead of `Arc`s), the code between the
//! `host` markers the whole host: all a user writes besides the handlers
//! (`tests/tests/calls_example.rs` counts the lines).
//!
//! `cargo run --release -p vox-examples --bin calls`

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex as M;
use embedded_io_async::{Read, Write};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vox_conduit_stable::StableStorage;
use vox_demo_protocol::{HostTime, ReadSensor, UART_CONFIG, UART_MTU, sensor_value};
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::sim::{BytePipe, PipeReader, PipeWriter};
use vox_link_embedded::{FramedLink, FramedLinkStorage, FramedPort, SharedLinkChannel};
use vox_rpc::{CallError, Calls, Client, Server};
use vox_types::Clock;

// ---- the wire: a serial line that can be cut (a stand-in for a UART) ----

type Line = BytePipe<M, 4096>;
type HostLink = FramedLink<M, 8, UART_MTU>;

/// A writer that loses everything while the line is cut.
struct Cuttable<W> {
    inner: W,
    cut: Arc<AtomicBool>,
}

impl<W: embedded_io_async::ErrorType> embedded_io_async::ErrorType for Cuttable<W> {
    type Error = W::Error;
}

impl<W: embedded_io_async::Write> embedded_io_async::Write for Cuttable<W> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, W::Error> {
        if self.cut.load(Ordering::Relaxed) { Ok(buf.len()) } else { self.inner.write(buf).await }
    }
    async fn flush(&mut self) -> Result<(), W::Error> {
        self.inner.flush().await
    }
}

/// The line's two directions, the host's link source on it, and the switch.
fn wire() -> (Arc<Line>, Arc<Line>, SharedLinkChannel<M, HostLink>, Arc<AtomicBool>) {
    let (to_device, to_host) = (Arc::new(Line::new()), Arc::new(Line::new()));
    let cut = Arc::new(AtomicBool::new(false));
    let links = SharedLinkChannel::new();
    let (mut rx, mut tx) =
        (PipeReader(to_host.clone()), Cuttable { inner: PipeWriter(to_device.clone()), cut: cut.clone() });
    let (port, offer) = (FramedPort::new(Arc::new(FramedLinkStorage::new())), links.clone());
    tokio::spawn(async move { port.serve(&mut rx, &mut tx, &TokioClock, |link| offer.offer(link)).await });
    (to_device, to_host, links, cut)
}

/// Boots the device on the line (fresh memory: a reboot forgets everything).
fn boot(to_device: &Arc<Line>, to_host: &Arc<Line>, cut: &Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let (rx, tx) = (PipeReader(to_device.clone()), Cuttable { inner: PipeWriter(to_host.clone()), cut: cut.clone() });
    tokio::spawn(device(rx, tx))
}

// ANCHOR: device
/// The device: a framed link kept on its UART (`rx`, `tx`), and stable
/// sessions one after another serving `ReadSensor` (the demo device also
/// calls the host: see `vox-demo-device`). On a board, `static`s replace
/// the `Arc`s.
async fn device(mut rx: impl Read + Send, mut tx: impl Write + Send) {
    let (links, calls) = (SharedLinkChannel::<M, _>::new(), Calls::<M, 1, 24>::new());
    let storage = Arc::new(StableStorage::<M, 1024, 16, 512, 8>::new());
    let port = FramedPort::new(Arc::new(FramedLinkStorage::<M, 2, UART_MTU>::new()));
    let uart = port.serve(&mut rx, &mut tx, &TokioClock, |link| links.offer(link));
    let server = std::pin::pin!(Server::new().serve::<ReadSensor, _>(|sensor| Ok(sensor_value(*sensor))));
    let sessions = vox_rpc::initiator_sessions(storage, UART_CONFIG, links.clone(), &calls, server, TokioClock);
    tokio::select! { _ = uart => {}, _ = sessions => {} }
}
// ANCHOR_END: device

/// What became of the calls of one task.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: u32,
    not_run: u32,
    may_have_run: u32,
    wrong: u32,
}

impl Tally {
    fn answered(&mut self, correct: bool) {
        if correct { self.ok += 1 } else { self.wrong += 1 }
    }
    fn failed(&mut self, e: &CallError) {
        match e {
            CallError::Unknown | CallError::Undecodable | CallError::TooLarge => self.wrong += 1,
            e if e.may_have_run() => self.may_have_run += 1,
            _ => self.not_run += 1,
        }
    }
}

// ANCHOR: host
/// The host: stable sessions with the device one after another on the
/// same links and the same table of calls (a reboot ends one, the next
/// begins), and 8 tasks calling until `stop`, each call with a 200 ms
/// deadline.
async fn host(links: SharedLinkChannel<M, HostLink>, stop: Arc<AtomicBool>) -> Vec<Tally> {
    let calls = Arc::new(Calls::<M, 64, 256>::new());
    let client = Client::new(calls.clone(), TokioClock);
    tokio::spawn(async move {
        let storage = Arc::new(StableStorage::<M, 4096, 64, 4096, 64>::new());
        let server = Server::new().serve::<HostTime, _>(|_| Ok(TokioClock.now().as_millis()));
        let rng = ChaCha20Rng::from_os_rng;
        vox_rpc::acceptor_sessions(storage, UART_CONFIG, links, rng, &*calls, std::pin::pin!(server), TokioClock).await
    });
    let tasks = (0..8u8).map(|sensor| {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                match client.call::<ReadSensor>(sensor, Duration::from_millis(200)).await {
                    Ok(value) => tally.answered(value == sensor_value(sensor)),
                    Err(e) => tally.failed(&e),
                }
            }
            tally
        })
    });
    futures::future::join_all(tasks).await.into_iter().map(Result::unwrap_or_default).collect()
}
// ANCHOR_END: host

#[tokio::main]
async fn main() {
    println!("calls at a glance: 8 host tasks call the device (200 ms deadlines) across a 1.2 s line cut and a reboot");
    let (to_device, to_host, links, cut) = wire();
    let mut device = boot(&to_device, &to_host, &cut);
    let stop = Arc::new(AtomicBool::new(false));
    let host = tokio::spawn(host(links, stop.clone()));
    let phase = |name: &'static str, ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        println!("  {name}");
    };
    phase("called for 1 s", 1000).await;
    cut.store(true, Ordering::Relaxed);
    phase("the line was cut for 1.2 s", 1200).await;
    cut.store(false, Ordering::Relaxed);
    phase("called for 1 s after the cut", 1000).await;
    device.abort();
    let _ = (&mut device).await;
    to_device.clear();
    to_host.clear();
    device = boot(&to_device, &to_host, &cut);
    phase("the device rebooted; called for 2 s", 2000).await;
    stop.store(true, Ordering::Relaxed);
    let tallies = host.await.unwrap_or_default();
    device.abort();
    let all = tallies.iter().fold(Tally::default(), |a, t| Tally {
        ok: a.ok + t.ok,
        not_run: a.not_run + t.not_run,
        may_have_run: a.may_have_run + t.may_have_run,
        wrong: a.wrong + t.wrong,
    });
    println!();
    println!("| tasks | answered | surely not run | may have run | wrong |");
    println!("|------:|---------:|---------------:|-------------:|------:|");
    println!(
        "| {:>5} | {:>8} | {:>14} | {:>12} | {:>5} |",
        tallies.len(),
        all.ok,
        all.not_run,
        all.may_have_run,
        all.wrong
    );
    println!();
    println!(
        "{} calls answered, each with its own correct answer; {} failed without running (never sent, or refused); \
         {} failed and may have run (in flight when the deadline passed or the device rebooted).",
        all.ok, all.not_run, all.may_have_run
    );
    if tallies.len() == 8 && all.wrong == 0 && all.ok > 0 && all.may_have_run > 0 {
        println!("PASS");
    } else {
        println!("FAIL: {all:?}");
        std::process::exit(1);
    }
}
