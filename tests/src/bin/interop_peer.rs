//! A Rust stable-conduit peer over TCP for the Python interop tests
//! (`python/tests/test_interop_tcp.py`).
//!
//! ```text
//! interop_peer --role initiator|acceptor (--connect HOST:PORT | --listen HOST:PORT)
//!              [--count N] [--size S]
//! ```
//!
//! Prints `fingerprint <16 hex>` first (the schema fingerprint of the raw
//! byte family), `listening <addr>` for `--listen`, then sends `N`
//! messages (message `i`: `i` as 4 little-endian bytes, then filler up to
//! `S` bytes) while receiving `N` from the peer with the same pattern,
//! checking exactly once and in order; then closes and prints
//! `ok sent N received N reattachments R ...`. Any error prints
//! `error <why>` and exits with code 1.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::host::{Backoff, TcpDialer, TcpListenerSource};
use vox_tests::stable_harness::{TokioClock, rng};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, MsgFamily};

/// One opaque message: a byte string (postcard: varint length, bytes).
#[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema, Debug, PartialEq)]
pub struct Blob<'a>(#[serde(borrow)] pub &'a [u8]);

vox_types::msg_family!(
    /// The interop family: raw bytes.
    pub InteropFamily => Blob<'a>
);

/// Replay and receive rings: room for messages up to 1 KiB and more.
type Storage = StableStorage<CriticalSectionRawMutex, 16384, 64, 16384, 64>;
type Stable = StableConduit<InteropFamily, Storage>;
/// Link payloads up to 2 KiB (a 1 KiB message and its header fit).
const MTU: usize = 2048;

struct Args {
    initiator: bool,
    connect: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    count: u32,
    size: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { initiator: true, connect: None, listen: None, count: 1000, size: 16 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--role" => {
                args.initiator = match value()?.as_str() {
                    "initiator" => true,
                    "acceptor" => false,
                    other => return Err(format!("unknown role {other}")),
                }
            }
            "--connect" => args.connect = Some(value()?.parse().map_err(|e| format!("--connect: {e}"))?),
            "--listen" => args.listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--count" => args.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--size" => args.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.size < 4 {
        return Err("--size must be at least 4".into());
    }
    if args.connect.is_none() == args.listen.is_none() {
        return Err("give exactly one of --connect and --listen".into());
    }
    if args.initiator != args.connect.is_some() {
        return Err("an initiator dials (--connect), an acceptor listens (--listen)".into());
    }
    Ok(args)
}

/// Message `i` of `size` bytes.
fn message(i: u32, size: usize) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.extend((4..size).map(|k| (i as usize).wrapping_mul(31).wrapping_add(k) as u8));
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn run(args: Args) -> Result<String, String> {
    let config = StableConfig { max_message: args.size + 8, ..StableConfig::DEFAULT };
    let storage = Arc::new(Storage::new());
    let (count, size) = (args.count, args.size);
    let (conduit, driver) = if let Some(addr) = args.connect {
        let (c, d) = Stable::initiator(storage, config).map_err(|e| format!("config: {e:?}"))?;
        let backoff =
            Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(200), give_up_after: None };
        let dialer = TcpDialer::<8, MTU>::sized(addr).with_backoff(backoff);
        (c, tokio::spawn(d.run(dialer, TokioClock)))
    } else {
        let addr = args.listen.ok_or("no address")?;
        let listener = TcpListener::bind(addr).await.map_err(|e| format!("bind {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        println!("listening {local}");
        let (c, d) = Stable::acceptor(storage, config).map_err(|e| format!("config: {e:?}"))?;
        let source = TcpListenerSource::<8, MTU>::sized(listener);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = u64::from(std::process::id()) ^ now.as_nanos() as u64;
        (c, tokio::spawn(d.run(source, rng(seed), TokioClock)))
    };
    let stats = conduit.stats_handle();
    let start = Instant::now();
    let (tx, mut rx) = conduit.split();
    let send = async move {
        for i in 0..count {
            let m = message(i, size);
            let permit = tx.reserve().await.map_err(|e| format!("reserve {i}: {e}"))?;
            permit.send(Blob(&m)).map_err(|e| format!("send {i}: {e}"))?;
        }
        drop(tx);
        Ok::<(), String>(())
    };
    let receive = async move {
        for i in 0..count {
            let got = rx.recv().await.map_err(|e| format!("recv {i}: {e}"))?;
            let Some(got) = got else { return Err(format!("the peer closed after {i} messages")) };
            let want = message(i, size);
            if got.get::<InteropFamily>().0 != want.as_slice() {
                let bytes = got.get::<InteropFamily>().0;
                return Err(format!(
                    "message {i}: got {} bytes starting {}",
                    bytes.len(),
                    hex(&bytes[..bytes.len().min(8)])
                ));
            }
        }
        match rx.recv().await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(format!("more than {count} messages")),
            Err(e) => Err(format!("after {count} messages: {e}")),
        }
    };
    let (sent, received) = tokio::join!(send, receive);
    sent?;
    received?;
    let elapsed = start.elapsed();
    match driver.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("session: {e}")),
        Err(e) => return Err(format!("driver task: {e}")),
    }
    let s = stats.get();
    Ok(format!(
        "ok sent {count} received {count} reattachments {} replays {} gaps {} duplicates {} timeouts {} seconds {:.3}",
        s.reattachments,
        s.replays,
        s.gaps,
        s.duplicates,
        s.timeouts,
        elapsed.as_secs_f64()
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    println!("fingerprint {}", hex(&InteropFamily::FINGERPRINT.0));
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("interop_peer: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error {e}");
            eprintln!("interop_peer: {e}");
            ExitCode::FAILURE
        }
    }
}
