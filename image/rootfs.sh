#!/bin/sh
# Stage 1 of image/build: a Debian arm64 root filesystem (bookworm, or trixie) with the Pi's kernel
# and firmware, MooseFS, drbd-utils and ssh, built with mmdebstrap under qemu-user (binfmt). The slow
# part, so the result is cached: CACHE/rootfs-KEY.tar (root) and CACHE/firmware-KEY.tar (what
# raspi-firmware puts on the boot partition). KEY hashes this script, the suite, the mirror and the
# package list, so editing the script or choosing another suite rebuilds.
#
#   image/rootfs.sh CACHE_DIR [SUITE]    prints the two tarball paths (builds them if missing);
#                                        SUITE: bookworm (default) or trixie
set -eu
CACHE=${1:?usage: image/rootfs.sh CACHE_DIR [bookworm|trixie]}
SUITE=${2:-bookworm}
case "$SUITE" in
    bookworm|trixie) ;;
    *) echo "rootfs.sh: suite $SUITE is not supported (bookworm or trixie)" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${MOOSEHERD_MIRROR:-http://deb.debian.org/debian}
SECURITY=${MOOSEHERD_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PACKAGES="systemd systemd-sysv systemd-timesyncd udev dbus kmod iproute2 iputils-ping procps less
  ca-certificates openssh-server linux-image-arm64 raspi-firmware firmware-brcm80211 initramfs-tools
  busybox-static e2fsprogs dosfstools fdisk fuse3 moosefs-master moosefs-chunkserver moosefs-client
  moosefs-metalogger moosefs-cli drbd-utils arping"
KEY=$( (cat "$0"; echo "$SUITE $MIRROR $PACKAGES") | sha256sum | cut -c1-16)
ROOT_TAR=$CACHE/rootfs-$KEY.tar
FW_TAR=$CACHE/firmware-$KEY.tar
if [ -s "$ROOT_TAR" ] && [ -s "$FW_TAR" ]; then
    echo "$ROOT_TAR $FW_TAR"
    exit 0
fi
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/rootfs-work.XXXXXX")
FW=$WORK/firmware
mkdir -p "$FW"
cleanup() {
    # Hooks bind-mount FW into the chroot; never leave it mounted.
    if [ -n "${WORK:-}" ]; then
        grep -q " $WORK" /proc/mounts && awk -v w="$WORK" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r umount -l
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM
start=$(date +%s)
# The kernel's initramfs under emulation takes > 10 min: update-initramfs is replaced by a stub during
# the build (it leaves an empty placeholder the raspi-firmware hook can copy), and image/build makes a
# small initrd natively (image/initrd.sh). On the Pi, apt upgrades run the real update-initramfs.
# raspi-firmware's kernel hook wants /boot/firmware to be a mount point: bind-mount FW there, so the
# firmware, DTBs and kernel it installs land in FW.
mmdebstrap --arch=arm64 --variant=apt --format=tar \
  --components="main non-free-firmware" \
  --include="$(echo $PACKAGES | tr ' ' ',')" \
  --aptopt='Acquire::Retries "3"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs' \
  --essential-hook='printf "%s\n" "#!/bin/sh" "# mooseherd image build stub (removed at the end of the build)" "while [ \$# -gt 0 ]; do [ \"\$1\" = -k ] && touch /boot/initrd.img-\$2; shift; done; exit 0" > "$1/usr/sbin/update-initramfs"; chmod 755 "$1/usr/sbin/update-initramfs"' \
  --essential-hook="mkdir -p \"\$1/boot/firmware\" && mount --bind '$FW' \"\$1/boot/firmware\"" \
  --customize-hook='rm -f "$1/usr/sbin/update-initramfs"; chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs' \
  --customize-hook='umount "$1/boot/firmware"' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*; : > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
  --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
  "$SUITE" "$WORK/rootfs.tar" \
  "deb $MIRROR $SUITE main non-free-firmware" \
  "deb $MIRROR $SUITE-updates main non-free-firmware" \
  "deb $SECURITY $SUITE-security main non-free-firmware" >&2
tar -C "$FW" -cf "$WORK/firmware.tar" .
mv "$WORK/rootfs.tar" "$ROOT_TAR"
mv "$WORK/firmware.tar" "$FW_TAR"
echo "rootfs ($SUITE) built in $(( $(date +%s) - start )) s" >&2
echo "$ROOT_TAR $FW_TAR"
