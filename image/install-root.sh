#!/bin/sh
# Installs mooseherd into an unpacked root filesystem (a directory; natively, no emulation):
# the static binary, the agent and first-boot units (enabled), the boot partition in fstab,
# DHCP on wired interfaces, MooseFS/DRBD services disabled (the agent runs them), root locked.
#
#   image/install-root.sh ROOT_DIR MOOSEHERD_BINARY SYSTEMD_UNIT_DIR
set -eu
ROOT=${1:?usage: image/install-root.sh ROOT_DIR BINARY UNIT_DIR}
BIN=${2:?binary}
UNITS=${3:?unit dir}
install -D -m 755 "$BIN" "$ROOT/usr/bin/mooseherd"
install -D -m 644 "$UNITS/mooseherd.service" "$ROOT/etc/systemd/system/mooseherd.service"
install -D -m 644 "$UNITS/mooseherd-firstboot.service" "$ROOT/etc/systemd/system/mooseherd-firstboot.service"
install -d -m 755 "$ROOT/etc/mooseherd" "$ROOT/boot/firmware"
# The agent starts mfsmaster/mfschunkserver/mfsmetalogger and DRBD itself; the packages' own
# services would start a second master.
for u in moosefs-master moosefs-chunkserver moosefs-metalogger moosefs-cgiserv drbd; do
    for d in "$ROOT"/etc/systemd/system/*.wants; do rm -f "$d/$u.service"; done
    rm -f "$ROOT"/etc/rc?.d/S??"$u"
done
systemctl --root="$ROOT" --quiet enable mooseherd.service mooseherd-firstboot.service \
    systemd-networkd.service systemd-timesyncd.service ssh.service
cat > "$ROOT/etc/fstab" <<FSTAB
# <file system> <mount point> <type> <options> <dump> <pass>
LABEL=ROOT	/	ext4	defaults,noatime	0	1
LABEL=BOOT	/boot/firmware	vfat	defaults,fmask=0077,dmask=0077	0	2
FSTAB
cat > "$ROOT/etc/systemd/network/20-wired.network" <<NET
# Every wired interface asks DHCP; mooseherd firstboot adds the node's rack address on its own.
[Match]
Name=eth* en*

[Network]
DHCP=yes
NET
# raspi-firmware rewrites config.txt and cmdline.txt when apt upgrades the kernel on the Pi: keep
# the root by label there too.
printf '%s\n' '# mooseherd image: root by label (see /etc/fstab)' 'ROOTPART=LABEL=ROOT' > "$ROOT/etc/default/raspi-firmware"
echo mooseherd > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tmooseherd\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
# No default password: root is locked until first boot installs keys or a hash.
sed -i 's/^root:[^:]*:/root:*:/' "$ROOT/etc/shadow"
# ssh host keys are made on the Pi at first boot: images must not share them.
rm -f "$ROOT"/etc/ssh/ssh_host_*
: > "$ROOT/etc/machine-id"
