//! How often an idle device wakes: the `device` firmware on QEMU
//! lm3s6965 (built with `idle-report`: telemetry off, and every 10 s the
//! executor's count of returns from `WFI` over semihosting) beside a host
//! session on the emulated UART, with the demo's UART settings
//! (keepalive 200 ms each way), for 30 s after the session is up. Prints
//! the device's wake-ups per second (goal ≤ 11: its own keepalives and
//! the host's, 5 a second each, plus the clock's wraps), and the spacing
//! of the device's reports in host time (its clock against the host's).
//!
//! `cargo bench -p vox-tests --bench qemu_idle [-- SECONDS]`

use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use vox_demo_protocol::ReadSensor;
use vox_qemu_rig::qemu::{Board, Qemu, Uart, build_firmware, ensure_qemu};
use vox_tests::tcp_serial_port::TcpSerialPort;

const LIMIT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30);
    if let Err(e) = ensure_qemu() {
        println!("qemu_idle skipped: {e}");
        return;
    }
    let elf = build_firmware("device", Board::Lm3s6965, &["idle-report"]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serial = TcpSerialPort::spawn(listener);
    let qemu = Qemu::start(&elf, Board::Lm3s6965, Uart::Tcp { port, reconnect: false }, LIMIT, true).await.unwrap();
    let booted = Instant::now();
    let session = serial.session().unwrap();
    // One call: the session is up, then it idles.
    session.client().call::<ReadSensor>(1, Duration::from_secs(30)).await.unwrap();
    // The reports come every 10 s of device time from boot: wait for the
    // one after `seconds` of idling.
    let first_idle = (booted.elapsed().as_secs() / 10 + 1) * 10;
    tokio::time::sleep_until((booted + Duration::from_secs(first_idle + seconds + 5)).into()).await;
    let host_secs = booted.elapsed().as_secs_f64();
    let output = String::from_utf8_lossy(&qemu.stop_with_output().await.unwrap()).into_owned();
    let reports: Vec<u64> =
        output.lines().filter_map(|l| l.strip_prefix("wakeups: ")?.split(' ').next()?.parse().ok()).collect();
    // Reports before the session idled cover the boot and the handshake.
    let idle: Vec<u64> =
        reports.iter().copied().skip((first_idle / 10) as usize).take((seconds / 10) as usize).collect();
    assert!(!idle.is_empty(), "no idle reports from the device: {output}");
    let per_second = idle.iter().sum::<u64>() as f64 / (idle.len() as f64 * 10.0);
    let stats = session.stats();
    println!(
        "QEMU lm3s6965 `device` (idle-report: telemetry off), idle beside a host for {} s, UART_CONFIG",
        idle.len() * 10
    );
    println!("device wake-ups per 10 s: {idle:?}");
    for line in output.lines().filter(|l| l.starts_with("wakeups: ")) {
        println!("device report: {line}");
        assert!(line.ends_with(" 0 steps back)"), "the device's clock stepped back: {line}");
    }
    println!("device wake-ups per second: {per_second:.2} (goal <= 11)");
    println!("device clock: {} reports of 10 s in {host_secs:.1} s of host time since QEMU started", reports.len());
    println!("host conduit: {stats:?}");
}
