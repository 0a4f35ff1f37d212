//! Puts `memory.x` on the linker's search path, plus `defmt.x` when
//! logging with defmt; folds identical functions at link time.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = fs::write(out.join("memory.x"), include_bytes!("memory.x")) {
        // A build script reports failure through its exit status.
        eprintln!("cannot write memory.x: {e}");
        std::process::exit(1);
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // Identical code folding: one copy of functions that compile to the
    // same instructions (code only: data keeps distinct addresses).
    println!("cargo:rustc-link-arg-bins=--icf=all");
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() || env::var_os("CARGO_FEATURE_DEFMT_CONDUIT").is_some() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
