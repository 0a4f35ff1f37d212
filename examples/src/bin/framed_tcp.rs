//! `FramedLink` over loopback TCP: an echo server and a client in one
//! process. Run with `cargo run --release -p vox-examples --bin framed_tcp`.

use vox_examples::framed_tcp::{echo_client, echo_server};

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
