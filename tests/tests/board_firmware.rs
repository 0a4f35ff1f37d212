//! The real boards' firmware builds and links as a board needs it: the
//! vector table at the start of the board's flash, within the chip's flash
//! and RAM, with the shared device application (and on USB, the packet
//! writer) linked in. The packetization itself is unit-tested in
//! `vox-link-embedded` (`usb::packet_writer::tests`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use vox_qemu_rig::boards::{BoardFirmware, footprint, sections};

/// Demangled symbol names of an ELF.
fn symbols(elf: &std::path::PathBuf) -> String {
    let out = Command::new("nm").arg("-C").arg(elf).output().expect("binutils `nm`");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (flash, RAM) of the board's chip in bytes.
fn chip_limits(firmware: BoardFirmware) -> (u64, u64) {
    match firmware {
        BoardFirmware::Rp2040Uart | BoardFirmware::Rp2040Usb => (2048 * 1024, 256 * 1024),
        BoardFirmware::Nrf52840Uart => (1024 * 1024, 256 * 1024),
    }
}

fn check(firmware: BoardFirmware, must_link: &[&str]) {
    let elf = firmware.build(&[]).unwrap_or_else(|e| panic!("{e}"));
    let vector_table = sections(&elf).unwrap().into_iter().find(|(name, _, _)| name == ".vector_table");
    let (_, size, addr) = vector_table.unwrap_or_else(|| panic!("{firmware:?}: no vector table"));
    assert_eq!(addr, firmware.vector_table_address(), "{firmware:?}: vector table at {addr:#x}");
    assert!(size > 0);
    let (flash, ram) = footprint(&elf).unwrap();
    let (flash_max, ram_max) = chip_limits(firmware);
    assert!(flash > 0 && flash <= flash_max, "{firmware:?}: {flash} B of flash");
    assert!(ram > 0 && ram <= ram_max, "{firmware:?}: {ram} B of RAM");
    let names = symbols(&elf);
    for symbol in must_link {
        assert!(names.contains(symbol), "{firmware:?}: `{symbol}` is not linked in");
    }
    println!("{}: {flash} B flash, {ram} B static RAM", firmware.name());
}

// r[verify board.uart]
#[test]
fn rp2040_uart_firmware_builds_with_the_shared_device_application() {
    check(BoardFirmware::Rp2040Uart, &["vox_demo_device::CONDUIT_STORAGE", "embassy_rp::uart::buffered"]);
}

// r[verify board.usb]
#[test]
fn rp2040_usb_firmware_builds_with_the_packet_writer() {
    check(
        BoardFirmware::Rp2040Usb,
        &["vox_demo_device::CONDUIT_STORAGE", "vox_link_embedded::usb::packet_writer", "embassy_usb"],
    );
}

// r[verify board.second]
#[test]
fn nrf52840_uart_firmware_builds_with_the_shared_device_application() {
    check(BoardFirmware::Nrf52840Uart, &["vox_demo_device::CONDUIT_STORAGE", "embassy_nrf::buffered_uarte"]);
}
