#!/usr/bin/env bash
# The full test command (README): installs what it needs, then runs every
# check CI runs. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Incremental caches double the target directory (21 GB of 41 GB seen here)
# and a full run never reuses them; a CI disk filled up with them once.
export CARGO_INCREMENTAL=0

MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
THUMB_TARGETS=(thumbv6m-none-eabi thumbv7em-none-eabihf)
LIBRARY_CRATES=(vox-types vox-link-embedded vox-conduit-bare vox-conduit-stable vox-rpc)

started=$SECONDS
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - started))" "$*"; }

step "toolchains: stable (+clippy, rustfmt), MSRV $MSRV, nightly (+miri), thumb targets"
rustup component add clippy rustfmt >/dev/null 2>&1 || rustup component add clippy rustfmt
rustup target add "${THUMB_TARGETS[@]}" thumbv7m-none-eabi >/dev/null
rustup toolchain install "$MSRV" --profile minimal >/dev/null
rustup toolchain install nightly --profile minimal --component miri,rust-src --allow-downgrade >/dev/null

step "qemu-system-arm (Debian package) for the firmware tests"
scripts/install-qemu.sh

BOARD_CRATES=(examples/firmware-rp2040 examples/firmware-nrf52840)

step "cargo fmt --check (workspace and firmware)"
cargo fmt --all --check
for dir in examples/firmware "${BOARD_CRATES[@]}"; do
  (cd "$dir" && cargo fmt --check)
done

step "cargo clippy (all features, then default features)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy --workspace --all-targets -- -D warnings

step "docs build without warnings (workspace)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --workspace --no-deps --all-features

step "firmware clippy: lm3s6965evb (thumbv7m; no defmt, defmt over semihosting, defmt over the conduit), microbit (thumbv6m)"
(
  cd examples/firmware
  cargo clippy --quiet --release --bins -- -D warnings
  cargo clippy --quiet --release --bins --features defmt -- -D warnings
  cargo clippy --quiet --release --bins --features defmt-conduit -- -D warnings
  cargo clippy --quiet --release --bins --features idle-report -- -D warnings
  cargo clippy --quiet --release --bins --no-default-features --features board-microbit \
    --target thumbv6m-none-eabi -- -D warnings
)

step "board firmware clippy: RP2040 (uart, usb) and nRF52840; no defmt, defmt over RTT, defmt over the conduit"
for dir in "${BOARD_CRATES[@]}"; do
  (
    cd "$dir"
    cargo clippy --quiet --release --bins -- -D warnings
    cargo clippy --quiet --release --bins --features defmt -- -D warnings
    cargo clippy --quiet --release --bins --features defmt-conduit -- -D warnings
  )
done

step "no_std builds (default features off) for ${THUMB_TARGETS[*]}"
for target in "${THUMB_TARGETS[@]}"; do
  for krate in "${LIBRARY_CRATES[@]}"; do
    cargo build --quiet -p "$krate" --no-default-features --target "$target"
  done
done

step "host tests, default features of each library crate"
for krate in "${LIBRARY_CRATES[@]}"; do
  cargo test --quiet -p "$krate"
done

step "host tests, whole workspace, all features (the QEMU firmware tests build the firmware)"
cargo test --workspace --all-features

step "Python: the second implementation (standard library only): codecs against docs/PROTOCOL.md, schemas and vectors, stable conduit and rpc host, interop with the Rust peer over TCP and the QEMU firmware over its pty, the CLI"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "python3 >= 3.11 is needed")'
python3 -m unittest discover -s python/tests -t python

step "release: stable-conduit chaos run (100k messages each way on a noisy, cut serial line), the README demo, the gateway, calls, bare_tcp and framed_tcp examples"
cargo test --release -p vox-tests --test stable_chaos -- --include-ignored --nocapture
cargo test --release -p vox-tests --test bare_idle -- --include-ignored --nocapture
cargo test --release -p vox-conduit-stable --test simulation -- --nocapture
cargo run --release -p vox-examples --bin demo -- --messages 2000
cargo run --release -p vox-examples --bin demo -- --messages 200000 --time-limit 120
cargo run --release -p vox-examples --bin demo -- --qemu --requests 2000
cargo run --release -p vox-examples --bin gateway -- 64 100
cargo run --release -p vox-examples --bin calls
cargo run --release -p vox-examples --bin bare_tcp
cargo run --release -p vox-examples --bin framed_tcp

step "MSRV $MSRV: check the workspace and the firmware, test vox-types"
cargo "+$MSRV" check --quiet --workspace --all-targets --all-features
cargo "+$MSRV" test --quiet -p vox-types --all-features
rustup target add --toolchain "$MSRV" thumbv7m-none-eabi "${THUMB_TARGETS[@]}" >/dev/null
for dir in examples/firmware "${BOARD_CRATES[@]}"; do
  (cd "$dir" && cargo "+$MSRV" check --quiet --release --bins)
done

step "Miri: vox-types, the in-memory link, the stable conduit's lent receive ring and its session core (and, on hosts, the releases and reservations taken without the lock, across threads), vox-rpc (its pinned handler runs, the defmt logger's critical sections)"
cargo +nightly miri test -p vox-types --all-features
cargo +nightly miri test -p vox-link-embedded --features std
cargo +nightly miri test -p vox-conduit-stable --lib -- stable_storage session::tests writer_queue
cargo +nightly miri test -p vox-conduit-stable --lib --features std,send -- stable_storage writer_queue
cargo +nightly miri test -p vox-rpc --lib --features defmt

step "crates.io: cargo package (verified, default then all features) of the library crates; serial on Windows and macOS"
package_args=()
for krate in "${LIBRARY_CRATES[@]}"; do package_args+=(-p "$krate"); done
# The verification builds our crates as registry packages, which cargo
# never unpacks or rebuilds again for the same version: drop earlier
# copies of them (sources unpacked under CARGO_HOME, and builds).
rm -rf /tmp/pkg-target/package
find /tmp/pkg-target -name '*vox*' -prune -exec rm -rf {} + 2>/dev/null || true
for krate in "${LIBRARY_CRATES[@]}"; do
  find "${CARGO_HOME:-$HOME/.cargo}/registry" -maxdepth 3 -name "$krate-[0-9]*" -prune -exec rm -rf {} + 2>/dev/null || true
done
cargo package --quiet --allow-dirty --target-dir /tmp/pkg-target "${package_args[@]}"
cargo package --quiet --allow-dirty --all-features --target-dir /tmp/pkg-target "${package_args[@]}"
rustup target add x86_64-pc-windows-gnu x86_64-apple-darwin >/dev/null 2>&1 ||
  rustup target add x86_64-pc-windows-gnu x86_64-apple-darwin
for target in x86_64-pc-windows-gnu x86_64-apple-darwin; do
  cargo check --quiet -p vox-link-embedded --features serial --target "$target" --target-dir /tmp/xcheck-target
done

step "all checks passed in $((SECONDS - started)) s"
