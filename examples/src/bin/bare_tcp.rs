//! `BareConduit` + `FramedLink` over loopback TCP: the library's
//! `BareAcceptor` on the host side, a device-like server answering
//! commands and streaming telemetry, and a client that checks every reply.
//! Run with `cargo run --release -p vox-examples --bin bare_tcp`.

use tokio::net::{TcpListener, TcpStream};
use vox_conduit_bare::{BareAcceptor, BareAcceptorRunner, BareConduit, ConnectError, CountedLink};
use vox_demo_protocol::{Command, DemoFamily, DemoMsg, Outcome, answer, sensor_value};
use vox_link_embedded::host::{TcpLink, TcpListenerSource, TokioClock, spawn_framed};
use vox_types::{Conduit, ConduitAcceptor, ConduitRx, ConduitTx, ConduitTxPermit, LinkError, SessionRole};

/// The server's conduit: a bare conduit on a connection the acceptor
/// counts against its cap.
type ServerConduit = BareConduit<CountedLink<ExampleLink>, DemoFamily>;
/// The client's conduit.
type ClientConduit = BareConduit<ExampleLink, DemoFamily>;

/// The example's links: the library's default TCP link (8 slots of
/// 1 KiB each way).
type ExampleLink = TcpLink;

/// Any error of the example's loops (sending, receiving).
type ExampleError = Box<dyn std::error::Error + Send + Sync>;

/// Handshakes at once at most.
const PENDING: usize = 32;
/// Connections held at most (handshaking or accepted).
const MAX_CONNECTIONS: usize = 64;
/// A connection must send its prologue within this.
const HANDSHAKE_TIMEOUT_MS: u32 = 2_000;

/// A bare acceptor on `listener` (the library's, with the example's
/// limits) and its runner, to spawn.
fn acceptor(
    listener: TcpListener,
) -> (BareAcceptor<ExampleLink, DemoFamily>, BareAcceptorRunner<TcpListenerSource, DemoFamily, TokioClock, PENDING>) {
    BareAcceptor::new(TcpListenerSource::new(listener), TokioClock, HANDSHAKE_TIMEOUT_MS, MAX_CONNECTIONS)
}

/// Dials a bare conduit, refused typed (schema, mode, version) or
/// bounded by the handshake timeout.
async fn dial(addr: std::net::SocketAddr) -> Result<ClientConduit, ConnectError> {
    let stream = TcpStream::connect(addr).await.map_err(|e| ConnectError::Link(LinkError::Io(e.kind().into())))?;
    let (link, _runner) = spawn_framed(stream)?;
    BareConduit::connect_within(link, SessionRole::Initiator, TokioClock, HANDSHAKE_TIMEOUT_MS).await
}

/// Serves one conduit like a device: answers every request and streams
/// `telemetry` samples alongside. Returns when the host closes.
async fn serve(conduit: ServerConduit, telemetry: u32) -> Result<(), ExampleError> {
    let (tx, mut rx) = conduit.split();
    let answer = async {
        let mut outputs = 0u32;
        while let Some(msg) = rx.recv().await? {
            if let Some(reply) = answer(msg.get::<DemoFamily>(), &mut outputs) {
                tx.reserve().await?.send(reply)?;
            }
        }
        Ok::<_, ExampleError>(())
    };
    let stream = async {
        for seq in 0..telemetry {
            let sample = DemoMsg::Telemetry { seq, millivolts: 3300 - (seq % 100) as u16, label: "vbat" };
            tx.reserve().await?.send(sample)?;
        }
        Ok::<_, ExampleError>(())
    };
    let (answered, streamed) = tokio::join!(answer, stream);
    answered.and(streamed)
}

/// The client's `id`-th command; echoes carry `echo`.
fn command(id: u32, echo: &[u8]) -> Command<'_> {
    match id % 3 {
        0 => Command::SetOutput { pin: (id % 40) as u8, high: id.is_multiple_of(2) },
        1 => Command::ReadSensor { sensor: (id % 7) as u8 },
        _ => Command::Echo(echo),
    }
}

/// What the client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientReport {
    /// Replies that matched their request.
    pub replies: u32,
    /// Telemetry samples, all in order.
    pub telemetry: u32,
}

/// Sends `requests` commands (pipelined), checks every reply, and counts
/// `telemetry` samples; closes when both are complete.
async fn run_client(conduit: ClientConduit, requests: u32, telemetry: u32) -> Result<ClientReport, ExampleError> {
    let (tx, mut rx) = conduit.split();
    let payload = |id: u32| -> Vec<u8> { id.to_le_bytes().repeat(1 + (id as usize % 8)) };
    let send = async {
        for id in 0..requests {
            let echo = payload(id);
            tx.reserve().await?.send(DemoMsg::Request { id, command: command(id, &echo) })?;
        }
        Ok::<_, ExampleError>(())
    };
    let receive = async {
        let mut report = ClientReport { replies: 0, telemetry: 0 };
        while report.replies < requests || report.telemetry < telemetry {
            let Some(msg) = rx.recv().await? else { break };
            match msg.get::<DemoFamily>() {
                DemoMsg::Reply { id, outcome } => {
                    let echo = payload(*id);
                    let expected = match command(*id, &echo) {
                        Command::SetOutput { pin, .. } if pin >= 32 => Outcome::Failed("no such pin"),
                        Command::SetOutput { .. } => Outcome::Done,
                        Command::ReadSensor { sensor } => Outcome::Value(sensor_value(sensor)),
                        Command::Echo(_) => Outcome::Echo(&echo),
                    };
                    assert_eq!((*id, outcome), (report.replies, &expected), "replies arrive in order, correct");
                    report.replies += 1;
                }
                DemoMsg::Telemetry { seq, .. } => {
                    assert_eq!(*seq, report.telemetry, "telemetry in order");
                    report.telemetry += 1;
                }
                DemoMsg::Request { .. } => {}
            }
        }
        Ok::<_, ExampleError>(report)
    };
    let (sent, report) = tokio::join!(send, receive);
    sent?;
    let report = report?;
    tx.close().await?;
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut acceptor, runner) = acceptor(listener);
        tokio::spawn(runner.run());
        let conduit = acceptor.accept().await?;
        serve(conduit, 5_000).await
    });
    let start = std::time::Instant::now();
    let report = run_client(dial(addr).await?, 10_000, 5_000).await?;
    let elapsed = start.elapsed();
    server.await?.map_err(|e| e.to_string())?;
    println!(
        "{} replies and {} telemetry samples over BareConduit + FramedLink + TCP in {:.1} ms",
        report.replies,
        report.telemetry,
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
