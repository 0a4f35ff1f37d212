//! The library's `BareAcceptor` on loopback TCP: idle, stalled and
//! garbage-sending connections delay no legitimate client; connections
//! beyond the cap are closed at once; memory stays bounded.

use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use vox_conduit_bare::BareAcceptor;
use vox_conduit_bare::{BareAcceptorRunner, BareConduit, ConnectError, CountedLink};
use vox_demo_protocol::{Command, DemoFamily, DemoMsg, Outcome, answer};
use vox_link_embedded::host::spawn_framed;
use vox_link_embedded::host::{TcpLink, TcpListenerSource, TokioClock};
use vox_tests::conduit_kit::KitFamily;
use vox_types::{
    Conduit, ConduitAcceptor, ConduitMode, ConduitRx, ConduitTx, ConduitTxPermit, LinkError, MsgFamily, Prologue,
    SessionRole,
};

/// Connections held at most (handshaking or accepted).
const MAX_CONNECTIONS: usize = 64;
/// A connection must send its prologue within this.
const HANDSHAKE_TIMEOUT_MS: u32 = 2_000;

/// The acceptor under test: 32 handshakes at once, `MAX_CONNECTIONS` held.
fn acceptor(
    listener: TcpListener,
) -> (BareAcceptor<TcpLink, DemoFamily>, BareAcceptorRunner<TcpListenerSource, DemoFamily, TokioClock, 32>) {
    BareAcceptor::new(TcpListenerSource::new(listener), TokioClock, HANDSHAKE_TIMEOUT_MS, MAX_CONNECTIONS)
}

/// A client's conduit to `addr`, refused typed or bounded by the timeout.
async fn dial(addr: std::net::SocketAddr) -> Result<BareConduit<TcpLink, DemoFamily>, ConnectError> {
    let stream = TcpStream::connect(addr).await.map_err(|e| ConnectError::Link(LinkError::Io(e.kind().into())))?;
    let (link, _runner) = spawn_framed(stream)?;
    BareConduit::connect_within(link, SessionRole::Initiator, TokioClock, HANDSHAKE_TIMEOUT_MS).await
}

/// Answers every request on `conduit` as the demo device does, until the
/// client closes.
async fn serve(conduit: BareConduit<CountedLink<TcpLink>, DemoFamily>) {
    let (tx, mut rx) = conduit.split();
    let mut outputs = 0u32;
    while let Ok(Some(msg)) = rx.recv().await {
        if let Some(reply) = answer(msg.get::<DemoFamily>(), &mut outputs) {
            let Ok(permit) = tx.reserve().await else { return };
            let _ = permit.send(reply);
        }
    }
}

/// One request (read sensor 3) on a fresh conduit, its reply checked.
async fn one_request(addr: std::net::SocketAddr) {
    let (tx, mut rx) = dial(addr).await.unwrap().split();
    let request = DemoMsg::Request { id: 7, command: Command::ReadSensor { sensor: 3 } };
    tx.reserve().await.unwrap().send(request).unwrap();
    let reply = rx.recv().await.unwrap().expect("a reply");
    let expected = DemoMsg::Reply { id: 7, outcome: Outcome::Value(vox_demo_protocol::sensor_value(3)) };
    assert_eq!(reply.get::<DemoFamily>(), &expected);
    tx.close().await.unwrap();
}

/// A valid bare prologue, framed (after the stream's leading delimiter).
fn framed_prologue() -> Vec<u8> {
    let mut p = [0u8; 32];
    let n = Prologue::new(ConduitMode::Bare, SessionRole::Initiator, vox_demo_protocol::DemoFamily::FINGERPRINT)
        .encode(&mut p)
        .unwrap();
    let mut frame = [0u8; 64];
    let m = vox_link_embedded::framed::codec::encode_frame(&p[..n], &mut frame).unwrap();
    [&[0u8][..], &frame[..m]].concat()
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

// r[verify host.bare-acceptor]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stalled_and_garbage_connections_delay_no_legitimate_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A larger cap for this test: the hostile connections must not fill it.
    let (mut acceptor, runner) = BareAcceptor::<TcpLink, vox_demo_protocol::DemoFamily>::new::<_, _, 64>(
        TcpListenerSource::new(listener),
        TokioClock,
        HANDSHAKE_TIMEOUT_MS,
        1024,
    );
    tokio::spawn(runner.run());
    tokio::spawn(async move {
        while let Ok(conduit) = acceptor.accept().await {
            tokio::spawn(serve(conduit));
        }
    });
    let before = rss_kib();
    let prologue = framed_prologue();
    let mut hostile = Vec::new();
    for kind in 0..3 {
        for _ in 0..200 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            match kind {
                0 => {}
                // A prologue, then nothing (a handshake the bare side
                // completes: it holds a conduit that never speaks).
                1 => s.write_all(&prologue[..prologue.len() - 1]).await.unwrap(),
                _ => s.write_all(&[0x55; 512]).await.unwrap(),
            }
            hostile.push(s);
        }
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), one_request(addr)).await.expect("served");
    let took = started.elapsed();
    let grown = rss_kib().saturating_sub(before);
    println!("first reply after {took:?} behind 600 hostile connections; RSS grew {grown} KiB");
    // Well below the handshake timeout (what a client queued behind the
    // hostile handshakes would wait), with room for a loaded CI machine.
    assert!(took < Duration::from_millis(u64::from(HANDSHAKE_TIMEOUT_MS) / 2), "first reply after {took:?}");
    assert!(grown < 64 * 1024, "memory stays bounded: {grown} KiB");
    drop(hostile);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut acceptor, runner) = acceptor(listener);
    tokio::spawn(runner.run());
    // The application accepts and keeps every conduit (they count against
    // the cap until dropped).
    let (stats_tx, mut stats_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut kept = Vec::new();
        loop {
            tokio::select! {
                c = acceptor.accept() => match c {
                    Ok(c) => kept.push(c),
                    Err(_) => break,
                },
                () = tokio::time::sleep(Duration::from_millis(600)) => {
                    let _ = stats_tx.send(acceptor.stats());
                }
            }
        }
    });
    // 1,000 connections with a valid prologue.
    let prologue = framed_prologue();
    let mut held = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&prologue).await;
        held.push(s);
    }
    let stats = tokio::time::timeout(Duration::from_secs(5), stats_rx.recv()).await.unwrap().unwrap();
    println!("{stats:?}");
    assert!(stats.connections <= MAX_CONNECTIONS, "at most the cap is held: {stats:?}");
    assert!(stats.over_cap > 0, "the rest were closed at once: {stats:?}");
    let counted = stats.accepted
        + stats.over_cap
        + stats.busy
        + stats.evicted
        + stats.timed_out
        + stats.refused
        + stats.evicted_idle;
    assert_eq!(counted, 1000, "every connection is accounted for: {stats:?}");
    // A client beyond the cap gets a typed error at once, not a hang.
    let refused = tokio::time::timeout(Duration::from_secs(5), dial(addr)).await.expect("at once");
    assert!(
        matches!(
            refused,
            Err(vox_conduit_bare::ConnectError::PeerClosed
                | vox_conduit_bare::ConnectError::Refused(_)
                | vox_conduit_bare::ConnectError::Link(_))
        ),
        "typed: {:?}",
        refused.err()
    );
    drop(held);
    let _ = KitFamily::FINGERPRINT;
}

/// A framed payload that is no prologue gets no answer (the connection just
/// closes); a prologue the acceptor refuses is answered with its own, so
/// the peer finds the same mismatch (PROTOCOL §3, §4).
// r[verify host.bare-acceptor]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_no_answer_and_a_refused_prologue_gets_ours() {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_acceptor, runner) = BareAcceptor::<TcpLink, vox_demo_protocol::DemoFamily>::new::<_, _, 8>(
        TcpListenerSource::new(listener),
        TokioClock,
        HANDSHAKE_TIMEOUT_MS,
        8,
    );
    tokio::spawn(runner.run());
    let framed = |payload: &[u8]| {
        let mut frame = [0u8; 64];
        let n = vox_link_embedded::framed::codec::encode_frame(payload, &mut frame).unwrap();
        [&[0u8][..], &frame[..n]].concat()
    };
    // What comes back before the acceptor closes the connection.
    let answer = |bytes: Vec<u8>| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
        (read.is_ok(), got)
    };
    let (closed, got) = answer(framed(b"GET / HTTP/1.1")).await;
    assert!(closed, "the acceptor closes a garbage connection");
    // A link starts with a delimiter; no frame follows it.
    assert!(got.iter().all(|&b| b == 0), "garbage gets no answer: {got:?}");
    let other = Prologue::new(ConduitMode::Bare, SessionRole::Initiator, KitFamily::FINGERPRINT);
    let mut p = [0u8; 32];
    let n = other.encode(&mut p).unwrap();
    let (closed, got) = answer(framed(&p[..n])).await;
    assert!(closed, "the acceptor closes a refused connection");
    assert!(got.windows(4).any(|w| w == b"VOXE"), "a refused prologue is answered with ours: {got:?}");
}
