//! A host serving many devices through one `StableAcceptor` on a TCP
//! port. The devices dial (they are the initiators and need no random
//! numbers); the host listens (the acceptor: it makes every session's
//! resume key from its CSPRNG, routes a device's new connection to its
//! session, and refuses newcomers when its table is full of live ones).
//!
//! Here the devices are tasks of this program (serving the demo's
//! `ReadSensor` through `vox-rpc` over `TcpDialer`s); a real one runs
//! `vox-demo-device`. The host calls each device through its own table of
//! calls.
//! `cargo run --release -p vox-examples --bin gateway [-- DEVICES REQUESTS]`

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use vox_conduit_stable::{AcceptorConfig, StableAcceptor, StableConfig, StableStorage};
use vox_demo_protocol::{ReadSensor, sensor_value};
use vox_link_embedded::host::{TcpDialer, TcpLink, TcpListenerSource, TokioClock};
use vox_rpc::{Calls, Client, RpcFamily, Server, SessionsEnded};

type M = CriticalSectionRawMutex;
/// Every session's storage: 4 KiB / 32 messages of replay and of receive ring.
type Storage = StableStorage<M, 4096, 32, 4096, 32>;
/// Sessions the gateway holds at most (and new ones that may wait for
/// `accept`; 1,024 handshakes at once, the default).
const TABLE: usize = 64;

/// A device: dials the gateway and serves `ReadSensor`, session after
/// session (the conduit reattaches by itself if the connection drops; a
/// gateway that is busy, with too many devices waiting for its `accept`,
/// refuses the session on the wire, and the device tries again a moment
/// later).
async fn device(gateway: std::net::SocketAddr) -> SessionsEnded {
    let calls = Calls::<M, 1, 16>::new();
    let server = pin!(Server::new().serve::<ReadSensor, _>(|sensor| Ok(sensor_value(*sensor))));
    let storage = Arc::new(Storage::new());
    vox_rpc::initiator_sessions(storage, CONFIG, TcpDialer::new(gateway), &calls, server, TokioClock).await
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
    let (mut acceptor, runner) = StableAcceptor::<RpcFamily, Storage, M, TcpLink>::new(
        TcpListenerSource::new(listener),
        TokioClock,
        CONFIG,
        AcceptorConfig::with_sessions(TABLE),
    )?;
    tokio::spawn(runner.run());
    for _ in 0..devices {
        tokio::spawn(device(gateway));
    }

    // The host: for each device that connects, its session (the conduit's
    // driver and the calls over it) and a task that calls it and checks
    // every answer. A device that fails never connects: the run is
    // bounded.
    let start = std::time::Instant::now();
    let run = async {
        let mut hosts = Vec::new();
        for _ in 0..devices {
            let (conduit, driver, links) = acceptor.accept().await?;
            tokio::spawn(driver.run(links, ChaCha20Rng::from_os_rng(), TokioClock));
            let calls = Arc::new(Calls::<M, 4, 64>::new());
            let client = Client::new(calls.clone(), TokioClock);
            tokio::spawn(async move { vox_rpc::run(conduit, &*calls, pin!(Server::new()), TokioClock).await });
            hosts.push(tokio::spawn(async move {
                for sensor in (0..requests).map(|i| (i % 8) as u8) {
                    let value = client.call::<ReadSensor>(sensor, Duration::from_secs(5)).await?;
                    if value != sensor_value(sensor) {
                        return Err(format!("sensor {sensor}: got {value}").into());
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
    let answered = match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(answered) => answered?,
        Err(_) => return Err("the devices were not all served within 60 s".into()),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{devices} devices, {answered} calls answered through vox-rpc over one StableAcceptor in {secs:.2} s \
         ({:.0} calls/s)",
        f64::from(answered) / secs
    );
    Ok(())
}
