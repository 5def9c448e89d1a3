#!/usr/bin/env bash
# Installs everything mooseherd's build, tests and lab need on a fresh Debian 12 machine (as root):
# Debian packages, the aarch64 Rust target and cargo tools. Safe to run again: it only installs
# what is missing.
set -euo pipefail

APT_PACKAGES=(
  # build
  gcc git pkg-config ca-certificates
  # aarch64: clang/llvm-ar for C code in the static musl build, qemu-user to run its tests
  clang llvm qemu-user-static binfmt-support
  # systemd-analyze verifies the unit
  systemd
  # image scripts (tests/it/image_scripts.rs): loop-free partitioning, FAT and ext4 editing
  fdisk dosfstools mtools e2fsprogs
  # the lab rack: namespaces, VIP, ARP, packet loss, real MooseFS
  iproute2 nftables arping procps psmisc util-linux
  moosefs-master moosefs-chunkserver moosefs-client moosefs-metalogger moosefs-cli
  # the baseline the failover benchmark compares against (`mooseherd lab baseline up`)
  keepalived
)

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/setup.sh: installing Debian packages needs root (run it with sudo)" >&2
    exit 1
  fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # A clean-up hook on some images removes .debs mid-run ("cannot access archive"): retry once.
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null \
    || { sleep 5; apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "${missing[@]}" >/dev/null; }
fi

# Tests of the aarch64 build start the aarch64 binary: the kernel must hand it to qemu (binfmt_misc).
if [ "$(id -u)" = 0 ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc 2>/dev/null || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "setup: warning: binfmt_misc has no qemu-aarch64 entry; tests of the aarch64 build that start the agent will fail" >&2
fi

if ! command -v rustup >/dev/null 2>&1; then
  echo "setup: rustup is not installed. mooseherd needs Rust 1.85+ (edition 2024) from rustup;" >&2
  echo "       Debian 12's rustc is too old. Install rustup, then run this again." >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -q '^aarch64-unknown-linux-musl$' || rustup target add aarch64-unknown-linux-musl

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
echo "setup: ok ($(rustc --version), $(cargo nextest --version | head -1))"
