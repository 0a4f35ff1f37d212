//! Footprint of the firmware from `size`: flash (`.text` + `.rodata` +
//! `.data`, vector table included) and static RAM (`.data` + `.bss`) of the
//! `device` firmware (StableConduit over FramedLink on the UART) and of the
//! `echo` firmware (same board support, executor and time driver, no
//! conduit stack). The difference is the conduit stack's cost.
//!
//! `cargo bench -p vox-tests --bench firmware_size`

use std::process::Command;
use vox_examples::qemu::{Board, build_firmware};

/// (flash, static RAM) in bytes.
fn footprint(bin: &str, board: Board) -> (u64, u64) {
    let elf = build_firmware(bin, board, &[]).unwrap();
    let out = Command::new("size").arg("-A").arg(&elf).output().expect("binutils `size`");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut flash, mut ram) = (0, 0);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(bytes)) = (parts.next(), parts.next().and_then(|b| b.parse::<u64>().ok())) else {
            continue;
        };
        match name {
            ".vector_table" | ".text" | ".rodata" => flash += bytes,
            ".data" => {
                flash += bytes;
                ram += bytes;
            }
            ".bss" | ".uninit" => ram += bytes,
            _ => {}
        }
    }
    (flash, ram)
}

fn main() {
    println!("| board | firmware | flash (B) | static RAM (B) |");
    println!("|-------|----------|----------:|---------------:|");
    for board in [Board::Lm3s6965, Board::Microbit] {
        let device = footprint("device", board);
        let echo = footprint("echo", board);
        for (name, (flash, ram)) in [("device", device), ("echo (no conduit)", echo)] {
            println!("| {} | {name} | {flash} | {ram} |", board.machine());
        }
        println!(
            "| {} | conduit stack | {} | {} |",
            board.machine(),
            device.0.saturating_sub(echo.0),
            device.1.saturating_sub(echo.1)
        );
    }
}
