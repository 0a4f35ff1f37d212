//! A Rust stable- or bare-conduit peer over TCP for the Python interop
//! tests (`python/tests/test_interop_tcp.py`, `test_interop_refusals.py`).
//!
//! ```text
//! interop_peer --role initiator|acceptor (--connect HOST:PORT | --listen HOST:PORT)
//!              [--mode stable|bare|table] [--count N] [--size S]
//!              [--sessions N] [--queue Q] [--accept K]
//!              [--present-role initiator|acceptor] [--present-version V] [--wrong-schema]
//! ```
//!
//! `--mode table` runs a `StableAcceptor` (many sessions, one listener)
//! with `--sessions N` places in its table and `--queue Q` new sessions
//! waiting for `accept` at most; the application accepts the first
//! `--accept K` sessions (echoing their messages) and no more, so later
//! newcomers get `Reject(TableFull)` or `Reject(Busy)`. It prints
//! `stats <AcceptorStats as Debug>` whenever they change, until killed.
//!
//! `--mode bare` (default `stable`) runs a `BareConduit` on one framed TCP
//! connection (the acceptor takes the first connection and answers at
//! once, as `BareConduit::connect` does). The `--present-*` options and
//! `--wrong-schema` (bare only) make it present another role, protocol
//! version or schema fingerprint in its prologue, for the refusal tests:
//! it then prints `error connect: <ConnectError as Debug>` when refused.
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
use tokio::net::{TcpListener, TcpStream};
use vox_conduit_bare::{BareConduit, ConnectError};
use vox_conduit_stable::{AcceptorConfig, StableAcceptor, StableConduit, StableConfig, StableStorage};
use vox_link_embedded::host::{Backoff, TcpDialer, TcpLink, TcpListenerSource, spawn_framed};
use vox_tests::stable_harness::{TokioClock, rng};
use vox_types::{
    Conduit, ConduitMode, ConduitRx, ConduitTx, ConduitTxPermit, HandshakeError, Link, LinkRx, MsgFamily, Prologue,
    SchemaFingerprint, SessionRole, exchange_prologue,
};

/// One opaque message: a byte string (postcard: varint length, bytes).
#[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema, Debug, PartialEq)]
pub struct Blob<'a>(#[serde(borrow)] pub &'a [u8]);

vox_types::msg_family!(
    /// The interop family: raw bytes.
    pub InteropFamily => Blob<'a>
);

/// Another family (a `u32`), for `--wrong-schema`.
#[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema, Debug, PartialEq)]
pub struct Other(pub u32);

vox_types::msg_family!(
    /// A family whose fingerprint differs from `InteropFamily`'s.
    pub OtherFamily => Other
);

/// Replay and receive rings: room for messages up to 1 KiB and more.
type Storage = StableStorage<CriticalSectionRawMutex, 16384, 64, 16384, 64>;
type Stable = StableConduit<InteropFamily, Storage>;
/// Link payloads up to 2 KiB (a 1 KiB message and its header fit).
const MTU: usize = 2048;

/// A bare link: 8 payloads of up to `MTU` bytes each way.
type BareLink = TcpLink<8, MTU>;
/// A bare handshake must complete within this.
const BARE_HANDSHAKE_MS: u32 = 5_000;

struct Args {
    initiator: bool,
    bare: bool,
    table: bool,
    sessions: usize,
    queue: usize,
    accept: usize,
    present_role: Option<SessionRole>,
    present_version: Option<u16>,
    wrong_schema: bool,
    connect: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    count: u32,
    size: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        initiator: true,
        bare: false,
        table: false,
        sessions: 1,
        queue: 1,
        accept: 1,
        present_role: None,
        present_version: None,
        wrong_schema: false,
        connect: None,
        listen: None,
        count: 1000,
        size: 16,
    };
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
            "--mode" => {
                (args.bare, args.table) = match value()?.as_str() {
                    "bare" => (true, false),
                    "stable" => (false, false),
                    "table" => (false, true),
                    other => return Err(format!("unknown mode {other}")),
                }
            }
            "--present-role" => {
                args.present_role = Some(match value()?.as_str() {
                    "initiator" => SessionRole::Initiator,
                    "acceptor" => SessionRole::Acceptor,
                    other => return Err(format!("unknown role {other}")),
                })
            }
            "--present-version" => {
                args.present_version = Some(value()?.parse().map_err(|e| format!("--present-version: {e}"))?)
            }
            "--wrong-schema" => args.wrong_schema = true,
            "--sessions" => args.sessions = value()?.parse().map_err(|e| format!("--sessions: {e}"))?,
            "--queue" => args.queue = value()?.parse().map_err(|e| format!("--queue: {e}"))?,
            "--accept" => args.accept = value()?.parse().map_err(|e| format!("--accept: {e}"))?,
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
    if !args.bare && (args.present_role.is_some() || args.present_version.is_some() || args.wrong_schema) {
        return Err("--present-role, --present-version and --wrong-schema need --mode bare".into());
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

/// The framed TCP link of a bare run: dialed, or the first connection
/// accepted.
/// Receives `count` messages and the end of the stream, checking each is
/// `message(i, size)`: exactly once, in order.
async fn receive_all<R: ConduitRx<Msg = InteropFamily>>(mut rx: R, count: u32, size: usize) -> Result<(), String> {
    for i in 0..count {
        let got = rx.recv().await.map_err(|e| format!("recv {i}: {e} ({e:?})"))?;
        let Some(got) = got else { return Err(format!("the peer closed after {i} messages")) };
        let bytes = got.get::<InteropFamily>().0;
        if bytes != message(i, size).as_slice() {
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
        Err(e) => Err(format!("after {count} messages: {e} ({e:?})")),
    }
}

async fn bare_link(args: &Args) -> Result<BareLink, String> {
    let stream = if let Some(addr) = args.connect {
        TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?
    } else {
        let addr = args.listen.ok_or("no address")?;
        let listener = TcpListener::bind(addr).await.map_err(|e| format!("bind {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        println!("listening {local}");
        listener.accept().await.map_err(|e| format!("accept: {e}"))?.0
    };
    let (link, _runner) = spawn_framed::<8, MTU>(stream).map_err(|e| format!("framed link: {e}"))?;
    Ok(link)
}

/// A prologue exchange presenting protocol version `version`: the peer
/// should refuse it (this side does not check versions after decoding;
/// the peer's refusal shows as the link ending).
async fn present_version(link: BareLink, role: SessionRole, version: u16) -> Result<String, String> {
    let (tx, mut rx) = link.split();
    let local = Prologue { version, ..Prologue::new(ConduitMode::Bare, role, InteropFamily::FINGERPRINT) };
    match exchange_prologue(&tx, &mut rx, &local).await {
        Err(HandshakeError::Prologue(e)) => Err(format!("connect: {:?}", ConnectError::Refused(e))),
        Err(e) => Err(format!("connect: {:?}", ConnectError::from(e))),
        Ok(peer) => {
            // The peer answered before checking ours (or accepted it): it
            // must now end the link.
            let ended = rx.recv().await.map(|p| p.map(|p| p.as_bytes().len()));
            Err(format!("version {version} presented, peer {peer:?} answered, then the link ended: {ended:?}"))
        }
    }
}

async fn run_bare(args: Args) -> Result<String, String> {
    let own_role = if args.initiator { SessionRole::Initiator } else { SessionRole::Acceptor };
    let role = args.present_role.unwrap_or(own_role);
    let link = bare_link(&args).await?;
    if let Some(version) = args.present_version {
        return present_version(link, role, version).await;
    }
    if args.wrong_schema {
        let refused = BareConduit::<_, OtherFamily>::connect_within(link, role, TokioClock, BARE_HANDSHAKE_MS).await;
        return match refused {
            Ok(_) => Err(format!("a peer accepted the schema {}", SchemaFingerprint(OtherFamily::FINGERPRINT.0))),
            Err(e) => Err(format!("connect: {e:?}")),
        };
    }
    let conduit = BareConduit::<_, InteropFamily>::connect_within(link, role, TokioClock, BARE_HANDSHAKE_MS)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let (count, size) = (args.count, args.size);
    let start = Instant::now();
    let (tx, rx) = conduit.split();
    let send = async move {
        for i in 0..count {
            let m = message(i, size);
            let permit = tx.reserve().await.map_err(|e| format!("reserve {i}: {e:?}"))?;
            permit.send(Blob(&m)).map_err(|e| format!("send {i}: {e:?}"))?;
        }
        tx.close().await.map_err(|e| format!("close: {e:?}"))
    };
    let receive = receive_all(rx, count, size);
    let (sent, received) = tokio::join!(send, receive);
    received?;
    sent?;
    Ok(format!("ok sent {count} received {count} bare seconds {:.3}", start.elapsed().as_secs_f64()))
}

/// A `StableAcceptor` with a small table: accepts `args.accept`
/// sessions (echoing them), then none; prints its stats as they change.
async fn run_table(args: Args) -> Result<String, String> {
    let addr = args.listen.ok_or("--mode table listens")?;
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    println!("listening {local}");
    let config = StableConfig { max_message: args.size + 8, ..StableConfig::DEFAULT };
    let table = AcceptorConfig { queue: args.queue, ..AcceptorConfig::with_sessions(args.sessions) };
    let (mut acceptor, runner) =
        StableAcceptor::<InteropFamily, Storage, CriticalSectionRawMutex, TcpLink<8, MTU>>::new(
            TcpListenerSource::<8, MTU>::sized(listener),
            TokioClock,
            config,
            table,
        )
        .map_err(|e| format!("config: {e:?}"))?;
    tokio::spawn(runner.run());
    let mut last = None;
    let mut accepted = 0;
    loop {
        let now = acceptor.stats();
        if last != Some(now) {
            println!("stats {now:?}");
            last = Some(now);
        }
        if accepted == args.accept {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // `accept` only pops the queue: cancelling it loses nothing.
        let Ok(next) = tokio::time::timeout(Duration::from_millis(10), acceptor.accept()).await else { continue };
        let (conduit, driver, links) = next.map_err(|e| format!("accept: {e}"))?;
        accepted += 1;
        tokio::spawn(driver.run(links, rng(accepted as u64), TokioClock));
        tokio::spawn(async move {
            let (tx, mut rx) = conduit.split();
            while let Ok(Some(m)) = rx.recv().await {
                let bytes = m.get::<InteropFamily>().0.to_vec();
                let Ok(permit) = tx.reserve().await else { return };
                if permit.send(Blob(&bytes)).is_err() {
                    return;
                }
            }
        });
    }
}

async fn run(args: Args) -> Result<String, String> {
    if args.bare {
        return run_bare(args).await;
    }
    if args.table {
        return run_table(args).await;
    }
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
    let (tx, rx) = conduit.split();
    let send = async move {
        for i in 0..count {
            let m = message(i, size);
            let permit = tx.reserve().await.map_err(|e| format!("reserve {i}: {e} ({e:?})"))?;
            permit.send(Blob(&m)).map_err(|e| format!("send {i}: {e} ({e:?})"))?;
        }
        drop(tx);
        Ok::<(), String>(())
    };
    let receive = receive_all(rx, count, size);
    let (sent, received) = tokio::join!(send, receive);
    sent?;
    received?;
    let elapsed = start.elapsed();
    match driver.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("session: {e} ({e:?})")),
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
