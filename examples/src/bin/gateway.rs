//! A host serving many devices through one `StableAcceptor` on a TCP
//! port. The devices dial (they are the initiators and need no random
//! numbers); the host listens (the acceptor: it makes every session's
//! resume key from its CSPRNG, routes a device's new connection to its
//! session, and refuses newcomers when its table is full of live ones).
//!
//! Here the devices are tasks of this program (the demo's device
//! protocol over `TcpDialer`s); a real one runs `vox-demo-device`.
//! `cargo run --release -p vox-examples --bin gateway [-- DEVICES REQUESTS]`

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::sync::Arc;
use vox_conduit_stable::wire::RejectReason;
use vox_conduit_stable::{SessionError, StableAcceptor, StableConduit, StableConfig, StableStorage};
use vox_demo_protocol::{Command, DemoFamily, DemoMsg, answer};
use vox_link_embedded::host::{TcpDialer, TcpLink, TcpListenerSource, TokioClock};
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};

type M = CriticalSectionRawMutex;
/// Every session's storage: 4 KiB / 32 messages of replay and of receive ring.
type Storage = StableStorage<M, 4096, 32, 4096, 32>;
/// Sessions the gateway holds at most, and handshakes it runs at once.
const TABLE: usize = 64;
const PENDING: usize = 32;

/// A device: dials the gateway and answers every request until the host
/// closes; the conduit reattaches by itself if the connection drops. A
/// gateway that is busy (too many devices waiting for its `accept`)
/// refuses the session on the wire: the device tries again.
async fn device(gateway: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    loop {
        let (conduit, driver) = StableConduit::<DemoFamily, Storage>::initiator(Arc::new(Storage::new()), CONFIG)?;
        let (tx, mut rx) = conduit.split();
        // Owns both halves: dropping them at its end closes the session.
        let serve = async move {
            let mut outputs = 0;
            while let Some(request) = rx.recv().await? {
                if let Some(reply) = answer(request.get::<DemoFamily>(), &mut outputs) {
                    tx.reserve().await?.send(reply)?;
                }
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        };
        let (driven, served) = tokio::join!(driver.run(TcpDialer::new(gateway), TokioClock), serve);
        match driven {
            Err(SessionError::Rejected(RejectReason::Busy)) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            driven => {
                driven?;
                return served;
            }
        }
    }
}

const CONFIG: StableConfig = StableConfig::DEFAULT;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let devices = args.next().transpose()?.unwrap_or(16);
    let requests = args.next().transpose()?.unwrap_or(200);
    if devices as usize > TABLE {
        return Err(format!("at most {TABLE} devices: the gateway's table holds {TABLE} sessions").into());
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = listener.local_addr()?;
    let (mut acceptor, runner) = StableAcceptor::<DemoFamily, Storage, M, TcpLink>::new::<_, _, TABLE, PENDING>(
        TcpListenerSource::new(listener),
        TokioClock,
        CONFIG,
    )?;
    tokio::spawn(runner.run());
    let devices_done: Vec<_> = (0..devices).map(|_| tokio::spawn(device(gateway))).collect();

    // The host: for each device that connects, a task that sends requests
    // and checks that each reply answers its request, in order. A device
    // that fails never connects: the run is bounded.
    let start = std::time::Instant::now();
    let run = async {
        let mut hosts = Vec::new();
        for _ in 0..devices {
            let (conduit, driver, links) = acceptor.accept().await?;
            tokio::spawn(driver.run(links, ChaCha20Rng::from_os_rng(), TokioClock));
            hosts.push(tokio::spawn(async move {
                let (tx, mut rx) = conduit.split();
                for id in 0..requests {
                    tx.reserve().await?.send(DemoMsg::Request { id, command: Command::ReadSensor { sensor: 1 } })?;
                    match rx.recv().await?.as_ref().map(|m| m.get::<DemoFamily>()) {
                        Some(DemoMsg::Reply { id: got, .. }) if *got == id => {}
                        other => return Err(format!("request {id}: got {other:?}").into()),
                    }
                }
                Ok::<u32, Box<dyn std::error::Error + Send + Sync>>(requests)
            }));
        }
        let mut answered = 0;
        for host in hosts {
            answered += host.await??;
        }
        Ok::<u32, Box<dyn std::error::Error + Send + Sync>>(answered)
    };
    let answered = match tokio::time::timeout(std::time::Duration::from_secs(60), run).await {
        Ok(answered) => answered?,
        Err(_) => return Err("the devices were not all served within 60 s".into()),
    };
    for device in devices_done {
        device.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{devices} devices, {answered} requests answered in order through one StableAcceptor in {secs:.2} s \
         ({:.0} requests/s)",
        f64::from(answered) / secs
    );
    Ok(())
}
