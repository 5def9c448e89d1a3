#!/usr/bin/env bash
# The README's test command: sets the machine up, then runs every check CI runs.
#   fmt, clippy, the whole test suite on x86_64, the whole test suite for aarch64 under qemu-user,
#   and the size of the static aarch64 release binary.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "aarch64: static release binary"
cargo build --release --quiet --target aarch64-unknown-linux-musl
bin=target/aarch64-unknown-linux-musl/release/mooseherd
qemu-aarch64-static "$bin" version
echo "aarch64 static stripped binary: $(stat -c %s "$bin") bytes"

step "tests (aarch64, under qemu-aarch64-static)"
cargo nextest run --target aarch64-unknown-linux-musl --no-fail-fast

step "tests (x86_64)"
cargo nextest run --no-fail-fast
