//! Footprint of the firmware from `size`: flash (`.text` + `.rodata` +
//! `.data`, vector table included) and static RAM (`.data` + `.bss`) of the
//! `device` firmware (StableConduit over FramedLink on the UART) and of the
//! `echo` firmware (same board support, executor and time driver, no
//! conduit stack). The difference is the conduit stack's cost.
//!
//! The `device` serves its endpoints through `vox-rpc`; `device_hand` is
//! the same application with the request matching written by hand (the
//! protocol it replaced): their difference is what `vox-rpc` adds.
//! `device_bare` serves the same calls through `vox-rpc` over a
//! `BareConduit` on the same link: `device` minus `device_bare` is what
//! reliability (seq/ack, replay, resume) costs.
//!
//! Then the real boards' firmware (embassy HALs), the same device
//! application: RP2040 over UART and over USB CDC-ACM, nRF52840 over UART,
//! beside postcard-rpc's figures.
//!
//! `cargo bench -p vox-tests --bench firmware_size`

use vox_qemu_rig::boards::{BoardFirmware, footprint};
use vox_qemu_rig::qemu::{Board, build_firmware};

/// Flash of postcard-rpc's RP2040 USB example firmware as published in its
/// workbook (about 44 KiB).
const POSTCARD_RPC_RP2040_USB_FLASH: u64 = 44 * 1024;

/// (flash, static RAM) in bytes of a QEMU firmware.
fn qemu_footprint(bin: &str, board: Board) -> (u64, u64) {
    footprint(&build_firmware(bin, board, &[]).unwrap()).unwrap()
}

fn main() {
    println!("| board | firmware | flash (B) | static RAM (B) |");
    println!("|-------|----------|----------:|---------------:|");
    let mut adds = Vec::new();
    let mut reliability = Vec::new();
    for board in [Board::Lm3s6965, Board::Microbit] {
        let device = qemu_footprint("device", board);
        let hand = qemu_footprint("device_hand", board);
        let bare = qemu_footprint("device_bare", board);
        let echo = qemu_footprint("echo", board);
        for (name, (flash, ram)) in [
            ("device (vox-rpc)", device),
            ("device_hand (hand-written requests)", hand),
            ("device_bare (vox-rpc, bare conduit)", bare),
            ("echo (no conduit)", echo),
        ] {
            println!("| {} | {name} | {flash} | {ram} |", board.machine());
        }
        adds.push((board, device.0 as i64 - hand.0 as i64, device.1 as i64 - hand.1 as i64));
        reliability.push((board, device.0 as i64 - bare.0 as i64, device.1 as i64 - bare.1 as i64));
        println!(
            "| {} | conduit stack | {} | {} |",
            board.machine(),
            device.0.saturating_sub(echo.0),
            device.1.saturating_sub(echo.1)
        );
    }
    println!();
    for (board, flash, ram) in adds {
        let line = format!("vox-rpc adds: {flash} B flash, {ram} B static RAM");
        if board == Board::Lm3s6965 {
            println!("{line}");
        } else {
            println!("{line} ({}, Cortex-M0)", board.machine());
        }
    }
    for (board, flash, ram) in reliability {
        let line =
            format!("the stable conduit over the bare one (device - device_bare): {flash} B flash, {ram} B static RAM");
        if board == Board::Lm3s6965 {
            println!("{line}");
        } else {
            println!("{line} ({}, Cortex-M0)", board.machine());
        }
    }
    println!();
    println!("Real boards (the same device application on embassy HALs):");
    println!("| board | transport | flash (B) | static RAM (B) | flash / postcard-rpc RP2040 USB (~44 KiB) |");
    println!("|-------|-----------|----------:|---------------:|------------------------------------------:|");
    for firmware in BoardFirmware::ALL {
        let (flash, ram) = footprint(&firmware.build(&[]).unwrap()).unwrap();
        println!(
            "| {} | {flash} | {ram} | {:.2} |",
            firmware.name(),
            flash as f64 / POSTCARD_RPC_RP2040_USB_FLASH as f64
        );
    }
    println!("(postcard-rpc serving the same protocol on lm3s6965, measured here: 16,524 B flash, 1,756 B RAM)");
}
