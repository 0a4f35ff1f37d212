//! The real boards' firmware (RP2040 over UART and USB, nRF52840 over
//! UART): build it as CI does, and measure its footprint from the ELF.

use crate::qemu::workspace_root;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// A firmware binary for a real board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardFirmware {
    /// Raspberry Pi Pico (RP2040), UART0 through embassy-rp's buffered UART.
    Rp2040Uart,
    /// Raspberry Pi Pico (RP2040), USB CDC-ACM through embassy-usb.
    Rp2040Usb,
    /// nRF52840-DK, UARTE0 through embassy-nrf's buffered UARTE.
    Nrf52840Uart,
}

impl BoardFirmware {
    /// Every board firmware.
    pub const ALL: [Self; 3] = [Self::Rp2040Uart, Self::Rp2040Usb, Self::Nrf52840Uart];

    /// Board and transport, for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rp2040Uart => "RP2040 (embassy-rp) | UART",
            Self::Rp2040Usb => "RP2040 (embassy-rp) | USB CDC-ACM",
            Self::Nrf52840Uart => "nRF52840 (embassy-nrf) | UART",
        }
    }

    /// The firmware crate's directory.
    pub fn crate_dir(self) -> PathBuf {
        let dir = match self {
            Self::Rp2040Uart | Self::Rp2040Usb => "firmware-rp2040",
            Self::Nrf52840Uart => "firmware-nrf52840",
        };
        workspace_root().join("examples").join(dir)
    }

    /// The binary's name.
    pub fn bin(self) -> &'static str {
        match self {
            Self::Rp2040Uart => "uart",
            Self::Rp2040Usb => "usb",
            Self::Nrf52840Uart => "vox-firmware-nrf52840",
        }
    }

    /// Rust target triple.
    pub fn target(self) -> &'static str {
        match self {
            Self::Rp2040Uart | Self::Rp2040Usb => "thumbv6m-none-eabi",
            Self::Nrf52840Uart => "thumbv7em-none-eabihf",
        }
    }

    /// Where the vector table must sit: the start of flash (after the
    /// RP2040's 256-byte second-stage bootloader).
    pub fn vector_table_address(self) -> u64 {
        match self {
            Self::Rp2040Uart | Self::Rp2040Usb => 0x1000_0100,
            Self::Nrf52840Uart => 0,
        }
    }

    /// Builds the binary in release mode with extra cargo `features` and
    /// returns the ELF's path.
    pub fn build(self, features: &[&str]) -> Result<PathBuf, String> {
        let _serial = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.crate_dir();
        let flavour = if features.is_empty() { "plain".to_string() } else { features.join("+") };
        let target_dir = dir.join("target").join(flavour);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&dir)
            .args(["build", "--release", "--quiet", "--bin", self.bin(), "--target", self.target()])
            .arg("--target-dir")
            .arg(&target_dir);
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        // The host build's settings must not leak into the firmware's.
        for var in
            ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"]
        {
            cmd.env_remove(var);
        }
        let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!("build of {self:?} failed:\n{}", String::from_utf8_lossy(&output.stderr)));
        }
        Ok(target_dir.join(self.target()).join("release").join(self.bin()))
    }
}

/// An ELF's sections as (name, size, address), from binutils `size -A`.
pub fn sections(elf: &PathBuf) -> Result<Vec<(String, u64, u64)>, String> {
    let out = Command::new("size").arg("-A").arg(elf).output().map_err(|e| format!("binutils `size`: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            let size = parts.next()?.parse().ok()?;
            let addr = parts.next()?.parse().ok()?;
            Some((name.to_string(), size, addr))
        })
        .collect())
}

/// Flash (vector table, code, read-only data, initialised data and the
/// RP2040's boot2) and static RAM (`.data`, `.bss`, `.uninit`) in bytes.
pub fn footprint(elf: &PathBuf) -> Result<(u64, u64), String> {
    let (mut flash, mut ram) = (0, 0);
    for (name, bytes, _) in sections(elf)? {
        match name.as_str() {
            ".vector_table" | ".text" | ".rodata" | ".boot2" => flash += bytes,
            ".data" => {
                flash += bytes;
                ram += bytes;
            }
            ".bss" | ".uninit" => ram += bytes,
            _ => {}
        }
    }
    Ok((flash, ram))
}
