//! `BareConduit` + `FramedLink` over loopback TCP: a device-like server and
//! a host client exchange typed requests/replies and a telemetry stream.
//! Run with `cargo run --release -p vox-examples --bin bare_tcp`.

use vox_examples::bare_tcp::{acceptor, dial, run_client, serve};
use vox_types::ConduitAcceptor;

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
