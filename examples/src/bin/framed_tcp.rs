//! `FramedLink` over loopback TCP: an echo server and a client in one
//! process, through `embedded-io-adapters`; the client checks every echo.
//! Run with `cargo run --release -p vox-examples --bin framed_tcp`.

use tokio::net::{TcpListener, TcpStream};
use vox_link_embedded::framed::FramedStats;
use vox_link_embedded::host::{TcpLink, spawn_framed};
use vox_types::{Link, LinkError, LinkRx, LinkTx, LinkTxPermit, WriteSlot};

/// The example's links: the library's default TCP link (8 slots of
/// 1 KiB each way).
type ExampleLink = TcpLink;

async fn send(tx: &impl LinkTx, bytes: &[u8]) -> Result<(), LinkError> {
    let mut slot = tx.reserve().await?.alloc(bytes.len())?;
    slot.as_mut_slice().copy_from_slice(bytes);
    slot.commit();
    Ok(())
}

/// Echo server: sends back every payload of one connection.
async fn echo_server(listener: TcpListener) -> Result<(), LinkError> {
    let (stream, _) = listener.accept().await.map_err(|e| LinkError::Io(e.kind().into()))?;
    let (link, runner): (ExampleLink, _) = spawn_framed(stream)?;
    let (tx, mut rx) = link.split();
    while let Some(payload) = rx.recv().await? {
        send(&tx, payload.as_bytes()).await?;
    }
    tx.close().await?;
    drop(rx);
    runner.await.map_err(|_| LinkError::Reset)?.0
}

/// What the client measured.
#[derive(Debug, Clone, Copy)]
struct EchoReport {
    /// Payloads sent and echoed back intact.
    pub echoed: u32,
    /// The client link's statistics.
    pub stats: FramedStats,
}

/// Client: sends `count` payloads of growing size, checks each echo.
async fn echo_client(addr: std::net::SocketAddr, count: u32) -> Result<EchoReport, LinkError> {
    let stream = TcpStream::connect(addr).await.map_err(|e| LinkError::Io(e.kind().into()))?;
    let (link, runner): (ExampleLink, _) = spawn_framed(stream)?;
    let (tx, mut rx) = link.split();
    let payload = |i: u32| -> Vec<u8> { (0..(i as usize % 1000)).map(|j| (i as usize + j) as u8).collect() };
    let sender = async {
        for i in 0..count {
            send(&tx, &payload(i)).await?;
        }
        tx.close().await
    };
    let receiver = async {
        let mut echoed = 0;
        for i in 0..count {
            match rx.recv().await? {
                Some(p) if p.as_bytes() == payload(i).as_slice() => echoed += 1,
                _ => return Err(LinkError::Malformed),
            }
        }
        // The server closes after echoing everything.
        match rx.recv().await? {
            None => Ok(echoed),
            Some(_) => Err(LinkError::Malformed),
        }
    };
    let (sent, echoed) = tokio::join!(sender, receiver);
    sent?;
    let echoed = echoed?;
    drop(rx);
    let (result, stats) = runner.await.map_err(|_| LinkError::Reset)?;
    result?;
    Ok(EchoReport { echoed, stats })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(echo_server(listener));
    let start = std::time::Instant::now();
    let report = echo_client(addr, 10_000).await?;
    let elapsed = start.elapsed();
    server.await??;
    let s = report.stats;
    println!("echoed {} payloads over loopback TCP in {:.1} ms", report.echoed, elapsed.as_secs_f64() * 1e3);
    println!(
        "client link: {} frames / {} payload bytes sent, {} wire bytes ({:.3} wire bytes per payload byte), {} CRC errors",
        s.frames_sent,
        s.payload_bytes_sent,
        s.wire_bytes_sent,
        s.wire_bytes_sent as f64 / s.payload_bytes_sent.max(1) as f64,
        s.crc_errors
    );
    Ok(())
}
