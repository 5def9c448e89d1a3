#!/usr/bin/env bash
# Fuzz the wire decoder (target `frame_open`) for a bounded time and print how many inputs ran.
# Usage: scripts/fuzz.sh [seconds] [extra libFuzzer flags...]   (default 60 s)
# Needs: cargo install cargo-fuzz; rustup toolchain install nightly.
# The code under test is safe Rust, so no sanitizer by default (2-3x faster); set
# FUZZ_SANITIZER=address to use ASan. The corpus persists in fuzz/corpus/frame_open/.
# Crashes land in fuzz/artifacts/frame_open/ (reproduce: cargo +nightly fuzz run frame_open FILE).
set -euo pipefail
secs="${1:-60}"
shift || true
cd "$(dirname "$0")/.."
log="$(mktemp -t mooseherd-fuzz.XXXXXX)"
trap 'rm -f "$log"' EXIT
status=0
cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" frame_open -- -max_total_time="$secs" -print_final_stats=1 "$@" \
    >"$log" 2>&1 || status=$?
tail -n 20 "$log"
runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)"
elapsed="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1 || true)"
if [[ -n "$runs" ]]; then
    rate=$(( runs / (elapsed > 0 ? elapsed : 1) ))
    echo "frame_open: ${runs} executions in ${elapsed:-?} s (~${rate} exec/s), exit status ${status}"
else
    echo "frame_open: no final stats (exit status ${status}); see output above"
fi
exit "$status"
