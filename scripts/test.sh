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

step "lease proof in simulation (release): 10,000 harsh schedules + lossy, crash, switchover runs"
cargo build --release --quiet
sim=target/release/mooseherd
$sim sim --schedules 10000 --scenario harsh
$sim sim --schedules 2000 --scenario lossy
$sim sim --schedules 2000 --scenario crashes
$sim sim --schedules 1000 --scenario switchover
# The checker must be able to fail: each deliberately broken lease has to be caught.
for v in no-drift-margin no-restart-wait; do
  if $sim sim --schedules 5000 --unsafe-variant "$v" > "target/unsafe-$v.txt"; then
    echo "the simulator did NOT catch --unsafe-variant $v" >&2; exit 1
  fi
  echo "--unsafe-variant $v caught: $(head -1 "target/unsafe-$v.txt")"
done

step "fuzz the wire decoder for 60 s (cargo-fuzz, nightly)"
if rustup toolchain list | grep -q '^nightly'; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
  bash scripts/fuzz.sh 60
else
  echo "skipped: no nightly toolchain on this machine (cargo-fuzz needs it; rustup toolchain install nightly)"
fi

step "tests (aarch64, under qemu-aarch64-static)"
cargo nextest run --target aarch64-unknown-linux-musl --no-fail-fast

step "tests (x86_64)"
cargo nextest run --no-fail-fast

step "PVC provisioner against a real kube-apiserver 1.20 + kube-controller-manager + MooseFS"
# scripts/kube.sh builds the control plane from Debian's source package once (~9-20 min on 2
# cores; cached in /var/cache/mooseherd-kube), then starts it and a MooseFS in a network
# namespace of its own; the tests run inside that namespace.
kdir=$(mktemp -d /tmp/mooseherd-kube.XXXXXX)
trap 'bash scripts/kube.sh stop "$kdir"' EXIT
bash scripts/kube.sh start "$kdir"
# shellcheck disable=SC1091
. "$kdir/env"
MOOSEHERD_TEST_KUBECONFIG="$KUBECONFIG" MOOSEHERD_TEST_MFS="$MOOSEHERD_TEST_MFS" \
  nsenter --net="$MOOSEHERD_TEST_NETNS" cargo nextest run --offline --no-fail-fast --test provisioner
bash scripts/kube.sh stop "$kdir"
trap - EXIT

step "bench provision: 100 PVCs created at once -> Bound (table; JSON in target/bench-provision.json)"
KUBE_PORT_BASE=36540 target/release/mooseherd bench provision --pvcs 100 --out target/bench-provision.json -q
