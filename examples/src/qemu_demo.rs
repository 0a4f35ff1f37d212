//! The README demo's `--qemu` mode: the host talks to the real device
//! firmware running in QEMU over the emulated UART, then power-cycles the
//! device and starts a new session.

use crate::device_host::{ExerciseReport, HostSession, TcpSerialPort, Workload};
use crate::qemu::{Board, Qemu, Uart, build_firmware, ensure_qemu};
use std::time::Duration;
use tokio::net::TcpListener;

fn print_round(name: &str, r: &ExerciseReport) {
    println!(
        "| {name:<22} | {:>8} | {:>7} | {:>9} | {:>5} | {:>7.2} s | {:>7.0} req/s |",
        r.requests,
        r.replies,
        r.telemetry,
        r.wrong,
        r.elapsed.as_secs_f64(),
        f64::from(r.replies) / r.elapsed.as_secs_f64().max(1e-9)
    );
}

/// Runs the demo against the firmware on `board`; `Err` says what failed.
pub async fn run_qemu_demo(board: Board, requests: u32) -> Result<(), String> {
    ensure_qemu()?;
    println!("building the device firmware for {} ({}) ...", board.machine(), board.target());
    let elf = build_firmware("device", board, &[])?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let serial = TcpSerialPort::spawn(listener);
    let limit = Duration::from_secs(300);
    println!("starting QEMU {} with the device's UART on 127.0.0.1:{port}\n", board.machine());
    let qemu = Qemu::start(&elf, board, Uart::Tcp { port, reconnect: false }, limit, false).await?;

    let work = Workload {
        requests,
        echo_len: 48,
        only_echo: false,
        min_telemetry: 10,
        window: 64,
        limit: Duration::from_secs(120),
    };
    println!("| session                | requests | replies | telemetry | wrong | time      | rate          |");
    println!("|------------------------|---------:|--------:|----------:|------:|----------:|--------------:|");
    let mut first = HostSession::start(&serial).map_err(|e| e.to_string())?;
    let one = first.exercise(work).await;
    print_round("first boot", &one);

    // Power cut: the device forgets its session and boots again.
    qemu.stop();
    let _qemu = Qemu::start(&elf, board, Uart::Tcp { port, reconnect: false }, limit, false).await?;
    let ended = first.until_ended(Duration::from_secs(20)).await;
    let stats = first.stats();
    drop(first);
    let mut second = HostSession::start(&serial).map_err(|e| e.to_string())?;
    let two = second.exercise(Workload { requests: requests / 4, ..work }).await;
    print_round("after a device reboot", &two);
    println!(
        "\nthe host saw the reboot as: {}",
        ended.as_ref().map_or_else(|| "nothing (timeout)".to_string(), |e| format!("{e:?} ({e})"))
    );
    println!(
        "first session: {} frames sent, {} received, {} acks, {} reattachments; device connections {}",
        stats.frames_sent,
        stats.frames_received,
        stats.acks_sent,
        stats.reattachments,
        serial.connections()
    );
    let ok = |r: &ExerciseReport| r.replies == r.requests && r.wrong == 0 && r.ended.is_none();
    if ok(&one)
        && ok(&two)
        && ended == Some(crate::device_host::Stopped::Session(vox_conduit_stable::SessionError::SessionLost))
    {
        Ok(())
    } else {
        Err("a request went unanswered, an answer was wrong, or the reboot was not reported".into())
    }
}
