//! Puts the board's `memory.x` on the linker's search path (the lm3s6965
//! device crate ships its own), adds `defmt.x` when logging with defmt, and
//! folds identical functions at link time.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    if env::var_os("CARGO_FEATURE_BOARD_MICROBIT").is_some() {
        // nRF51822 (QEMU `microbit`): 256 KiB flash, 16 KiB RAM.
        let memory =
            "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  RAM : ORIGIN = 0x20000000, LENGTH = 16K\n}\n";
        if let Err(e) = fs::write(out.join("memory.x"), memory) {
            // A build script reports failure through its exit status.
            eprintln!("cannot write memory.x: {e}");
            std::process::exit(1);
        }
        println!("cargo:rustc-link-search={}", out.display());
    }
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() || env::var_os("CARGO_FEATURE_DEFMT_CONDUIT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
    // Identical code folding: one copy of functions that compile to the
    // same instructions (code only: data keeps distinct addresses).
    println!("cargo:rustc-link-arg-bins=--icf=all");
    println!("cargo:rerun-if-changed=build.rs");
}
