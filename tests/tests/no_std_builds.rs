//! Builds every library crate the way firmware does: default features off,
//! for `thumbv6m-none-eabi` and `thumbv7em-none-eabihf`; and checks that
//! each cargo feature of `vox-types` builds on its own (features are
//! additive). Needs the two rustup targets (the test script installs them).

use std::process::Command;

const LIBRARY_CRATES: [&str; 4] = ["vox-types", "vox-link-embedded", "vox-conduit-bare", "vox-conduit-stable"];

fn cargo(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .env_remove("RUSTFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(status.success(), "cargo {} failed", args.join(" "));
}

// r[verify types.no-std]
// r[verify port.targets]
#[test]
fn library_crates_build_for_cortex_m_without_default_features() {
    for target in ["thumbv6m-none-eabi", "thumbv7em-none-eabihf"] {
        for krate in LIBRARY_CRATES {
            cargo(&["build", "--quiet", "-p", krate, "--no-default-features", "--target", target]);
        }
    }
}

// r[verify types.features]
#[test]
fn every_vox_types_feature_builds_alone() {
    for feature in ["alloc", "std", "send", "defmt", "facet"] {
        cargo(&["check", "--quiet", "-p", "vox-types", "--no-default-features", "--features", feature]);
    }
    cargo(&["check", "--quiet", "-p", "vox-types", "--no-default-features", "--features", "defmt,send"]);
    let m0 = ["--target", "thumbv6m-none-eabi"];
    cargo(&["build", "--quiet", "-p", "vox-types", "--no-default-features", "--features", "defmt", m0[0], m0[1]]);
}
