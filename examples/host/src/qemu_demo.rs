//! The README demo's `--qemu` mode: the host talks to the real device
//! firmware running in QEMU over the emulated UART, exposed as a
//! pseudo-terminal and opened by path with the library's serial-port link
//! source (exactly as a user opens `/dev/ttyACM0`), then power-cycles the
//! device and starts a new session. `--port PATH` does the same against a
//! real board.

use crate::defmt_frames::DefmtTable;
use crate::device_host::{ExerciseReport, HostSession, Workload};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vox_link_embedded::host::{Backoff, SerialPortSource};
pub use vox_qemu_rig::qemu::Board;
use vox_qemu_rig::qemu::{Qemu, Uart, build_firmware, ensure_qemu};

/// The UART's speed (a pseudo-terminal ignores it; a board's does not).
const BAUD: u32 = 115_200;

fn serial(path: &Path) -> SerialPortSource {
    let backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(200), give_up_after: None };
    SerialPortSource::new(&path.to_string_lossy(), BAUD).with_backoff(backoff)
}

/// Points the demo's stable path at the device's current pty, the way
/// udev keeps `/dev/serial/by-id/...` on a board across re-enumerations.
fn point(by_id: &Path, pty: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(by_id);
    std::os::unix::fs::symlink(pty, by_id).map_err(|e| format!("cannot link {}: {e}", by_id.display()))
}

/// The demo's mix of requests (48-byte echoes among them), 64 in flight,
/// waiting for 10 telemetry samples at least.
fn workload(requests: u32, limit: Duration) -> Workload {
    Workload { requests, echo_len: 48, only_echo: false, min_telemetry: 10, window: 64, limit }
}

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
    if let Some(e) = &r.ended {
        println!("  ({name}: the session ended early: {e})");
    }
}

/// One session's conduit counters, in a line.
fn print_stats(name: &str, s: &vox_conduit_stable::StableStats) {
    println!(
        "{name}: {} frames sent, {} received, {} acks, {} reattachments, {} link timeouts, {} gaps, {} CRC errors, {} protocol violations",
        s.frames_sent, s.frames_received, s.acks_sent, s.reattachments, s.timeouts, s.gaps, s.crc_errors, s.violations
    );
}

/// Runs the demo against the firmware on `board`; `Err` says what failed.
pub async fn run_qemu_demo(board: Board, requests: u32) -> Result<(), String> {
    ensure_qemu()?;
    println!("building the device firmware for {} ({}) ...", board.machine(), board.target());
    let elf = build_firmware("device", board, &[])?;
    let dir = std::env::temp_dir().join(format!("vox-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let by_id: PathBuf = dir.join("ttyVOX0");
    let limit = Duration::from_secs(300);
    let qemu = Qemu::start(&elf, board, Uart::Pty, limit, false).await?;
    let pty = qemu.pty().ok_or("QEMU has no pty")?.to_path_buf();
    point(&by_id, &pty)?;
    println!(
        "starting QEMU {} with the device's UART on {} (opened by path as {})\n",
        board.machine(),
        pty.display(),
        by_id.display()
    );

    let work = workload(requests, Duration::from_secs(120));
    println!("| session                | requests | replies | telemetry | wrong | time      | rate          |");
    println!("|------------------------|---------:|--------:|----------:|------:|----------:|--------------:|");
    let mut first = HostSession::start_on(serial(&by_id)).map_err(|e| e.to_string())?;
    let one = first.exercise(work).await;
    print_round("first boot", &one);

    // Power cut: the device forgets its session and boots again.
    qemu.stop();
    let qemu = Qemu::start(&elf, board, Uart::Pty, limit, false).await?;
    point(&by_id, qemu.pty().ok_or("QEMU has no pty")?)?;
    let ended = first.until_ended(Duration::from_secs(20)).await;
    let stats = first.stats();
    // The first boot's log lines, then the second's.
    let mut log = first.take_log();
    drop(first);
    let mut second = HostSession::start_on(serial(&by_id)).map_err(|e| e.to_string())?;
    let two = second.exercise(Workload { requests: requests / 4, ..work }).await;
    print_round("after a device reboot", &two);
    let epsilon = second.client().epsilon();
    let second_stats = second.stats();
    log.extend(second.take_log());
    println!(
        "\nthe host saw the reboot as: {}",
        ended.as_ref().map_or_else(|| "nothing (timeout)".to_string(), ToString::to_string)
    );
    print_stats("first session", &stats);
    print_stats("second session", &second_stats);
    println!(
        "the device may start a call at most {} after its deadline (the clock bound ε the host measured)",
        epsilon.map_or_else(|| "an unknown time".to_string(), |e| format!("{e} ms"))
    );
    for line in &log {
        println!("device log: {line}");
    }
    drop((second, qemu));
    let _ = std::fs::remove_dir_all(&dir);
    let ok = |r: &ExerciseReport| r.replies == r.requests && r.wrong == 0 && r.ended.is_none();
    let reboot_seen =
        ended == Some(crate::device_host::Stopped::Session(vox_conduit_stable::SessionError::SessionLost));
    let (asked, answered) = (one.requests + two.requests, one.replies + two.replies);
    println!();
    if ok(&one) && ok(&two) && reboot_seen {
        println!(
            "PASS: the device answered all {asked} calls correctly across a reboot, and the host saw the reboot as the session lost"
        );
        Ok(())
    } else {
        let why = if reboot_seen { "" } else { "; the host did not see the reboot as the session lost" };
        println!("FAIL: {answered} of {asked} calls answered, {} wrong{why}", one.wrong + two.wrong);
        Err("a call went unanswered, an answer was wrong, or the reboot was not reported".into())
    }
}

/// `demo --port PATH [--elf ELF]`: the same host session against a real
/// board on a serial port (`/dev/ttyACM0`, `/dev/serial/by-id/...`)
/// running the `device` firmware; prints the device's log lines, its
/// defmt frames decoded with `elf` (a firmware built with
/// `defmt-conduit`). Returns those lines; `Err` says what failed.
pub async fn run_port_demo(path: &Path, requests: u32, elf: Option<&Path>) -> Result<Vec<String>, String> {
    let table = elf.map(DefmtTable::from_elf).transpose()?;
    println!("host <-> the board on {} (opened by path; unplug and replug it freely)\n", path.display());
    let work = workload(requests, Duration::from_secs(600));
    let mut session = HostSession::start_on(serial(path)).map_err(|e| e.to_string())?;
    println!("| session                | requests | replies | telemetry | wrong | time      | rate          |");
    println!("|------------------------|---------:|--------:|----------:|------:|----------:|--------------:|");
    let r = session.exercise(work).await;
    print_round("board", &r);
    let s = session.stats();
    println!("\n{} reattachments, {} replays, {} CRC errors", s.reattachments, s.replays, s.crc_errors);
    let mut lines = session.take_log();
    let frames = session.take_defmt_frames();
    match &table {
        Some(table) => lines.extend(frames.iter().map(|f| table.decode(f))),
        None if !frames.is_empty() => {
            lines.push(format!("({} defmt frames: pass --elf with the firmware's ELF to decode them)", frames.len()))
        }
        None => {}
    }
    for line in &lines {
        println!("device log: {line}");
    }
    println!();
    if r.replies == r.requests && r.wrong == 0 && r.ended.is_none() {
        println!("PASS: the board answered all {} calls correctly", r.requests);
        Ok(lines)
    } else {
        let why = r.ended.as_ref().map_or_else(String::new, |e| format!("; the session ended: {e}"));
        let failure = r.last_failure.as_ref().map_or_else(String::new, |e| format!("; the last failed call: {e}"));
        println!("FAIL: {} of {} calls answered, {} wrong{why}{failure}", r.replies, r.requests, r.wrong);
        Err("a call went unanswered or an answer was wrong".into())
    }
}
