//! The README's demo: a "device" streams typed telemetry to a "host" over
//! an in-memory link; the host decodes each message zero-copy into a
//! `SelfRef` and prints a summary.
//!
//! Run with `cargo run --release -p vox-examples --bin demo`.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use postcard_schema::Schema;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use vox_link_embedded::MemoryLinkPair;
use vox_types::{Link, LinkError, LinkRx, LinkTx, LinkTxPermit, MsgFamily, SelfRef, WriteSlot};

/// One telemetry sample from the device.
#[derive(Serialize, Deserialize, Schema, Debug)]
struct Telemetry<'a> {
    seq: u32,
    millivolts: u16,
    #[serde(borrow)]
    label: &'a str,
}
vox_types::msg_family!(TelemetryFamily => Telemetry<'a>);

const MESSAGES: u32 = 100_000;

async fn device(tx: impl LinkTx) -> Result<(), LinkError> {
    for seq in 0..MESSAGES {
        let msg = Telemetry { seq, millivolts: (3300 + seq % 50) as u16, label: "vbat" };
        let len = postcard::experimental::serialized_size(&msg).map_err(|_| LinkError::Closed)?;
        let mut slot = tx.reserve().await?.alloc(len)?;
        postcard::to_slice(&msg, slot.as_mut_slice()).map_err(|_| LinkError::Closed)?;
        slot.commit();
    }
    tx.close().await
}

#[tokio::main]
async fn main() {
    println!("vox-embedded demo: device -> host telemetry over an in-memory link");
    println!("schema fingerprint {}", TelemetryFamily::FINGERPRINT);
    let (host_end, device_end) = MemoryLinkPair::<CriticalSectionRawMutex, 8, 64>::new_shared();
    let (device_tx, _device_rx) = device_end.split();
    let (_host_tx, mut host_rx) = host_end.split();
    let start = Instant::now();
    let device = tokio::spawn(device(device_tx));
    let (mut received, mut bad, mut last_mv) = (0u32, 0u32, 0u16);
    loop {
        match host_rx.recv().await {
            Ok(Some(frame)) => {
                let msg: Result<SelfRef<Telemetry<'static>>, _> =
                    SelfRef::try_new::<TelemetryFamily, _>(frame, |b| postcard::from_bytes(b));
                match msg {
                    Ok(m) if m.get::<TelemetryFamily>().seq == received => {
                        last_mv = m.get::<TelemetryFamily>().millivolts;
                        received += 1;
                    }
                    _ => bad += 1,
                }
                if received % 20_000 == 0 {
                    println!("  received {received:>7} / {MESSAGES}");
                }
            }
            Ok(None) => break,
            Err(e) => {
                println!("link error: {e}");
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    let device_result = device.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
    println!();
    println!("| sent     | received | bad | last mV | msgs/s     |");
    println!("|----------|----------|-----|---------|------------|");
    println!(
        "| {MESSAGES:>8} | {received:>8} | {bad:>3} | {last_mv:>7} | {:>10.0} |",
        f64::from(received) / elapsed.as_secs_f64()
    );
    if device_result.is_err() || received != MESSAGES || bad != 0 {
        eprintln!("demo FAILED: device {device_result:?}, received {received}, bad {bad}");
        std::process::exit(1);
    }
}
