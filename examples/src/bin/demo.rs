//! The README's demo: a "host" and a "device" stream typed messages both
//! ways over a noisy in-memory serial line that also gets cut now and
//! then. `StableConduit` over `FramedLink`s reattached to the same byte
//! stream delivers every message exactly once, in order.
//!
//! `cargo run --release -p vox-examples --bin demo [-- --messages N --noise-ppm P --cut-every F --seed S --time-limit SECONDS]`
//! (`-- --help` lists every flag)
//!
//! `--qemu [--board lm3s6965|microbit] [--requests N]`: the same host
//! code against the device firmware running in QEMU (installed when
//! missing), over the emulated UART, with a device reboot in the middle.

use vox_demo_host::qemu_demo::{Board, run_port_demo, run_qemu_demo};
use vox_demo_host::serial_line::{LineConfig, LineReport, run_line};

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("vox-embedded demo: host and device over a noisy, sometimes-cut in-memory serial line");
        println!();
        println!("  demo [--messages N] [--noise-ppm P] [--cut-every FRAMES] [--seed S] [--time-limit SECONDS]");
        println!("    --messages N          messages each way (default 20000)");
        println!("    --noise-ppm P         corrupted bytes per million (flipped, dropped, inserted; default 100)");
        println!("    --cut-every FRAMES    cut the line about every FRAMES frames each way (default 500; 0 never)");
        println!("    --seed S              seed of the noise (default 7)");
        println!("    --time-limit SECONDS  give up after this long (default 30 s + 1 ms per message)");
        println!();
        println!("  demo --qemu [--board lm3s6965|microbit] [--requests N]");
        println!("    the same host code against the device firmware in QEMU, its UART a pseudo-terminal");
        println!("    opened by path, with a device reboot");
        println!("    --board B             lm3s6965 (Cortex-M3, default) or microbit (Cortex-M0)");
        println!("    --requests N          requests per session (default 5000)");
        println!();
        println!("  demo --port PATH [--requests N] [--elf ELF]");
        println!("    the same host code against a board running the device firmware on a serial port");
        println!("    (/dev/ttyACM0, /dev/serial/by-id/...), opened by path and reopened after an unplug");
        println!("    --elf ELF             the firmware's ELF: decodes the defmt log it sends on the conduit");
        println!("                          (a firmware built with the feature defmt-conduit)");
        return;
    }
    if let Some(path) = args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)) {
        let requests = arg(&args, "--requests", 5_000) as u32;
        let elf = args.iter().position(|a| a == "--elf").and_then(|i| args.get(i + 1)).map(std::path::Path::new);
        if let Err(e) = run_port_demo(std::path::Path::new(path), requests, elf).await {
            eprintln!("demo FAILED: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--qemu") {
        let board = match args.iter().position(|a| a == "--board").and_then(|i| args.get(i + 1)).map(String::as_str) {
            Some("microbit") => Board::Microbit,
            _ => Board::Lm3s6965,
        };
        let requests = arg(&args, "--requests", 5_000) as u32;
        println!(
            "vox-embedded demo: host <-> firmware in QEMU, calls (vox-rpc) over StableConduit over FramedLink over the emulated UART"
        );
        if let Err(e) = run_qemu_demo(board, requests).await {
            eprintln!("demo FAILED: {e}");
            std::process::exit(1);
        }
        return;
    }
    let cfg = LineConfig {
        messages: arg(&args, "--messages", 20_000) as u32,
        noise_ppm: arg(&args, "--noise-ppm", 100) as u32,
        cut_every_frames: arg(&args, "--cut-every", 500) as u32,
        seed: arg(&args, "--seed", 7),
        progress: true,
        time_limit: args
            .iter()
            .any(|a| a == "--time-limit")
            .then(|| std::time::Duration::from_secs(arg(&args, "--time-limit", 0))),
    };
    println!("vox-embedded demo: host <-> device, StableConduit over FramedLink over a noisy in-memory serial line");
    println!(
        "{} messages each way; line noise {} per million bytes; line cut about every {} frames each way\n",
        cfg.messages, cfg.noise_ppm, cfg.cut_every_frames
    );
    let r = match run_line(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo FAILED: {e}");
            std::process::exit(1);
        }
    };
    let lost = 2 * u64::from(r.sent) - u64::from(r.delivered_to_device) - u64::from(r.delivered_to_host);
    let secs = r.elapsed.as_secs_f64();
    println!();
    println!("| direction    | sent   | delivered | lost | duplicated/out of order |");
    println!("|--------------|-------:|----------:|-----:|------------------------:|");
    println!(
        "| host->device | {:>6} | {:>9} | {:>4} | {:>23} |",
        r.sent,
        r.delivered_to_device,
        r.sent - r.delivered_to_device,
        ""
    );
    println!(
        "| device->host | {:>6} | {:>9} | {:>4} | {:>23} |",
        r.sent,
        r.delivered_to_host,
        r.sent - r.delivered_to_host,
        ""
    );
    println!(
        "| both         | {:>6} | {:>9} | {:>4} | {:>23} |",
        2 * r.sent,
        r.delivered_to_device + r.delivered_to_host,
        lost,
        r.misordered_or_duplicated
    );
    println!();
    println!(
        "| reattachments | replays | gaps | duplicates dropped | CRC errors | line cuts | noise (flip/drop/insert) | throughput |"
    );
    println!(
        "|--------------:|--------:|-----:|-------------------:|-----------:|----------:|-------------------------:|-----------:|"
    );
    println!(
        "| {:>13} | {:>7} | {:>4} | {:>18} | {:>10} | {:>9} | {:>24} | {:>7.0} msg/s |",
        r.host.reattachments + r.device.reattachments,
        r.host.replays + r.device.replays,
        r.host.gaps + r.device.gaps,
        r.host.duplicates + r.device.duplicates,
        r.framed.crc_errors,
        r.cuts,
        format!("{}/{}/{}", r.noise.flipped, r.noise.dropped, r.noise.inserted),
        f64::from(r.delivered_to_device + r.delivered_to_host) / secs
    );
    print_summary(&r, lost, secs);
    if std::env::var_os("VOX_DEMO_DEBUG").is_some() {
        println!("host   {:?}\ndevice {:?}\nframed {:?}", r.host, r.device, r.framed);
    }
    let ok = lost == 0
        && r.misordered_or_duplicated == 0
        && r.host_result == Some(Ok(()))
        && r.device_result == Some(Ok(()));
    if ok {
        println!("PASS: every message arrived exactly once and in order, and both sessions finished.");
        return;
    }
    let limit = cfg.time_limit.unwrap_or_else(|| cfg.default_limit());
    if r.elapsed >= limit && r.misordered_or_duplicated == 0 {
        println!(
            "FAIL: the demo stopped at its time limit of {} s before every message arrived (none out of order); \
             give it more with --time-limit SECONDS.",
            limit.as_secs()
        );
    } else {
        println!(
            "FAIL: {lost} messages lost, {} out of order or twice; sessions ended {}.",
            r.misordered_or_duplicated,
            ended(&r)
        );
    }
    std::process::exit(1);
}

/// How the two sessions ended, in words.
fn ended(r: &LineReport) -> String {
    let one = |e: &Option<Result<(), vox_conduit_stable::SessionError>>| match e {
        Some(Ok(())) => "finished".to_string(),
        Some(Err(e)) => format!("with an error ({e})"),
        None => "still running".to_string(),
    };
    format!("host {}, device {}", one(&r.host_result), one(&r.device_result))
}

/// The last lines: what happened, in sentences.
fn print_summary(r: &LineReport, lost: u64, secs: f64) {
    let delivered = u64::from(r.delivered_to_device) + u64::from(r.delivered_to_host);
    let faults = u64::from(r.cuts) + u64::from(r.framed.crc_errors) + u64::from(r.framed.malformed_frames);
    println!();
    println!(
        "{} messages sent ({} each way), {delivered} delivered, {lost} lost, {} out of order or twice.",
        2 * u64::from(r.sent),
        r.sent,
        r.misordered_or_duplicated
    );
    println!(
        "The line was cut {} times and noise hit {} bytes ({} flipped, {} dropped, {} inserted), so {} frames \
         arrived corrupt. The conduits reattached {} times: a corrupt frame ends the link under both sides, and \
         each side counts its own reattachment (about two per corrupt frame).",
        r.cuts,
        r.noise.flipped + r.noise.dropped + r.noise.inserted,
        r.noise.flipped,
        r.noise.dropped,
        r.noise.inserted,
        u64::from(r.framed.crc_errors) + u64::from(r.framed.malformed_frames),
        r.host.reattachments + r.device.reattachments
    );
    if faults > 0 {
        println!(
            "Replays: {} data frames sent again after a reattachment, because the peer had not acknowledged \
             them; gaps: {} frames that skipped a sequence number (a frame lost inside a link), each ending that \
             link so the replay fills the hole.",
            r.host.replays + r.device.replays,
            r.host.gaps + r.device.gaps
        );
    }
    println!("Rate: {:.0} messages/s over {secs:.2} s; sessions ended: {}.", delivered as f64 / secs, ended(r));
}
