#!/bin/sh
# Checks an image's layout without mounting it: partition table, boot files, mooseherd binary,
# units and their enable links. --built adds what image/build must produce (kernel, firmware,
# initrd, MooseFS, locked root, no ssh host keys, MooseFS services left to the agent).
#
#   image/check.sh IMG [--built]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
IMG=${1:?usage: image/check.sh IMG [--built]}
BUILT=${2:-}
find_parts "$IMG"
ok() { echo "ok: $*"; }
U=/etc/systemd/system
[ "$(part_field "$IMG" "$BOOT_PART" bootable)" = yes ] || die "boot partition $BOOT_PART is not marked bootable"
ok "MBR: FAT partition $BOOT_PART (bootable) at byte $BOOT_OFF, Linux partition $ROOT_PART at byte $ROOT_OFF"
fat_has() { mdir -b -i "$FAT" "::/$1" >/dev/null 2>&1 || die "boot partition lacks $1"; }
fat_has mooseherd/rack.toml
ok "boot: mooseherd/rack.toml"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT INT TERM
debugfs -R "dump /usr/bin/mooseherd $W/bin" "$EXT" >/dev/null 2>&1 || true
[ -s "$W/bin" ] || die "root lacks /usr/bin/mooseherd"
is_aarch64 "$W/bin" || die "/usr/bin/mooseherd is not an aarch64 ELF"
set -- $(ext_stat "$EXT" /usr/bin/mooseherd)
[ "$2" = 0755 ] && [ "$3" = 0 ] || die "/usr/bin/mooseherd has mode $2 owner $3, want 0755 root"
ok "root: /usr/bin/mooseherd (aarch64, 0755, root)"
for u in mooseherd.service mooseherd-firstboot.service; do
    [ "$(ext_stat "$EXT" $U/$u | cut -d' ' -f1)" = regular ] || die "root lacks $U/$u"
done
link_to() {
    t=$(debugfs -R "stat $1" "$EXT" 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p')
    [ "$t" = "$2" ] || die "$1 -> '$t', want $2 (unit not enabled)"
}
link_to $U/multi-user.target.wants/mooseherd.service $U/mooseherd.service
link_to $U/sysinit.target.wants/mooseherd-firstboot.service $U/mooseherd-firstboot.service
ok "root: mooseherd.service and mooseherd-firstboot.service enabled"
[ "$BUILT" = --built ] || exit 0

for f in config.txt cmdline.txt vmlinuz initrd.img start4.elf fixup4.dat bcm2711-rpi-4-b.dtb bcm2837-rpi-3-b-plus.dtb mooseherd/README.txt; do
    fat_has $f
done
mcopy -i "$FAT" ::/config.txt "$W/config.txt"
mcopy -i "$FAT" ::/cmdline.txt "$W/cmdline.txt"
grep -qx 'kernel=vmlinuz' "$W/config.txt" && grep -qx 'arm_64bit=1' "$W/config.txt" && grep -qx 'upstream_kernel=1' "$W/config.txt" || die "config.txt does not load the 64-bit kernel"
grep -q 'root=LABEL=ROOT' "$W/cmdline.txt" || die "cmdline.txt does not name root=LABEL=ROOT"
ok "boot: firmware, DTBs, vmlinuz, initrd.img, config.txt, cmdline.txt"
# trixie's 6.12 kernel carries the Pi 5's device tree; bookworm's 6.1 has none.
codename=$(os_codename "$EXT")
if [ "$codename" != bookworm ]; then
    fat_has bcm2712-rpi-5-b.dtb
    grep -qx '\[pi5\]' "$W/config.txt" || die "config.txt has no [pi5] section"
    ok "boot: Pi 5 device tree bcm2712-rpi-5-b.dtb and a [pi5] section ($codename)"
fi
dumpe2fs -h "$EXT" 2>/dev/null | grep -q '^Filesystem volume name: *ROOT$' || die "root filesystem is not labelled ROOT"
for p in /usr/sbin/mfsmaster /usr/sbin/mfschunkserver /usr/bin/mfsmount /usr/sbin/mfsmetalogger /usr/sbin/drbdadm /usr/sbin/sshd /lib/systemd/systemd; do
    [ -n "$(ext_stat "$EXT" $p)" ] || die "root lacks $p"
done
ok "root: MooseFS, drbd-utils, sshd, systemd"
debugfs -R 'cat /etc/shadow' "$EXT" 2>/dev/null | grep -q '^root:[*!]' || die "root has a password in /etc/shadow (the image must have none)"
debugfs -R 'ls /etc/ssh' "$EXT" 2>/dev/null | grep -q 'ssh_host_' && die "the image carries ssh host keys (every Pi would share them)"
for u in moosefs-master moosefs-chunkserver moosefs-metalogger; do
    [ -z "$(ext_stat "$EXT" $U/multi-user.target.wants/$u.service)" ] || die "$u.service is enabled (the agent runs MooseFS)"
done
debugfs -R 'cat /etc/fstab' "$EXT" 2>/dev/null | grep -q '^LABEL=BOOT[[:space:]]*/boot/firmware[[:space:]]*vfat' || die "fstab does not mount BOOT at /boot/firmware"
ok "root: no password, no ssh host keys, MooseFS services left to the agent, BOOT at /boot/firmware"
