#!/usr/bin/env bash
# The README's test command: sets the machine up, then runs every check CI runs (.ci/run):
#   fmt, clippy, the size of the static aarch64 release binary, the lease proof in simulation,
#   60 s of fuzzing, the test suite on x86_64 (as root, with the lab drills) and for aarch64 under
#   qemu-user, the provisioner tests against a real Kubernetes control plane, and its benchmark.
# No test may skip here (MOOSEHERD_NO_SKIP=1); each step prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."

# A test that would skip (not root, a tool or the Kubernetes environment missing) fails instead:
# here a missing setup step is an error, never a silent pass (tests/it/harness.rs).
export MOOSEHERD_NO_SKIP=1

# Each step prints how long the previous one took; the total comes at the end.
t_start=$(date +%s)
t_step=$t_start
step_name=""
step() {
  local now
  now=$(date +%s)
  if [[ -n "$step_name" ]]; then
    printf -- '--- %s: %d s\n' "$step_name" $((now - t_step))
  fi
  step_name="$*"
  t_step=$now
  printf '\n=== %s\n' "$*"
}

step "setup (scripts/setup.sh)"
bash scripts/setup.sh

step "MooseFS 4 beside Debian's 3.0 (scripts/moosefs.sh build: ~1-2 min once, then cached)"
# The lab tests run on MooseFS 4 (one kill-leader drill stays on 3.0), the provisioner tests on both.
bash scripts/moosefs.sh build
"$(bash scripts/moosefs.sh path | cut -d: -f2)/mfsmaster" -v

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
# cargo-fuzz needs a nightly toolchain: installed when missing. Only a machine that cannot install
# it (offline) skips this step, and under CI (CI=true) that is a failure.
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal || true
fi
if rustup toolchain list | grep -q '^nightly'; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
  bash scripts/fuzz.sh 60
elif [[ "${CI:-}" == "true" ]]; then
  echo "no nightly toolchain and it could not be installed: the fuzz step cannot run" >&2
  exit 1
else
  echo "SKIPPED: no nightly toolchain and it could not be installed (rustup toolchain install nightly)"
fi

# The integration tests are one binary, `it`, with tests named MODULE::TEST. Which run where:
#   lab::          the lab drills: x86_64 only (the module is not even built for aarch64), as root
#   provisioner::  need the Kubernetes control plane and MooseFS of scripts/kube.sh: their own step
#                  below, inside its network namespace
#   proof::lease::tests::the_checker_catches_*: x86_64 only. They run the simulator until a broken
#                  lease is caught (hundreds of schedules): pure code, the same on both targets,
#                  ~20 min under qemu in a debug build; the release CLI step above checks the same.
#   everything else: on both targets.
step "tests (aarch64, under qemu-aarch64-static): all but the lab, provisioner and checker-search tests"
cargo nextest run --target aarch64-unknown-linux-musl --no-fail-fast \
  -E 'not ((binary(it) & (test(/^lab::/) | test(/^provisioner::/))) | test(/^proof::lease::tests::the_checker_catches_/))'

step "tests (x86_64): all but the provisioner tests"
cargo nextest run --no-fail-fast -E 'not (binary(it) & test(/^provisioner::/))'

# scripts/kube.sh builds the control plane from Debian's source package once (~9-20 min on 2
# cores; cached in /var/cache/mooseherd-kube), then starts it and a MooseFS in a network
# namespace of its own; the tests run inside that namespace, with that MooseFS's client tools.
provisioner_tests() {
  local kdir
  kdir=$(mktemp -d /tmp/mooseherd-kube.XXXXXX)
  # shellcheck disable=SC2064
  trap "bash scripts/kube.sh stop '$kdir'" EXIT
  KUBE_MOOSEFS=$1 bash scripts/kube.sh start "$kdir"
  # shellcheck disable=SC1091
  . "$kdir/env"
  PATH="${MOOSEFS_BIN:+$MOOSEFS_BIN:}$PATH" \
    MOOSEHERD_TEST_KUBECONFIG="$KUBECONFIG" MOOSEHERD_TEST_MFS="$MOOSEHERD_TEST_MFS" \
    nsenter --net="$MOOSEHERD_TEST_NETNS" cargo nextest run --offline --no-fail-fast --test it \
    -E 'test(/^provisioner::/)'
  bash scripts/kube.sh stop "$kdir"
  trap - EXIT
}

step "PVC provisioner against a real kube-apiserver 1.20 + kube-controller-manager + MooseFS 4"
provisioner_tests 4

step "PVC provisioner, the same tests on MooseFS 3.0 (Debian 12's packages)"
provisioner_tests 3

step "bench provision: 100 PVCs created at once -> Bound (table; JSON in target/bench-provision.json)"
KUBE_PORT_BASE=36540 target/release/mooseherd bench provision --pvcs 100 --out target/bench-provision.json -q

step "done"
printf 'total: %d s\n' $(( $(date +%s) - t_start ))
