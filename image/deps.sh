#!/bin/sh
# Apt packages the image tiers need (image/build, image/customise, image/test-boot, image/test-drbd).
# Idempotent; run as root on Debian 12. Not part of scripts/setup.sh: only the image tiers need these.
set -eu
PKGS="debootstrap mmdebstrap qemu-user-static binfmt-support arch-test dosfstools mtools fdisk
      e2fsprogs e2tools fuse2fs qemu-system-arm qemu-system-x86 qemu-utils ipxe-qemu cpio zstd xz-utils"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The first install may fail with "cannot access archive" (a clean-up hook removes .debs): retry once.
apt-get install -y -qq --no-install-recommends $missing || apt-get install -y -qq --no-install-recommends $missing
