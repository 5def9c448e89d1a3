#!/bin/sh
# A small initramfs made natively (no emulation): busybox-static from the root filesystem, the
# kernel modules needed to reach the root partition (SD card, USB, virtio under qemu) and ext4,
# and an /init that loads them, waits for root= and switches to it. Debian's own initramfs-tools
# takes > 10 min under qemu-user; on the Pi, kernel upgrades regenerate the standard one natively.
#
#   image/initrd.sh ROOTFS_DIR KERNEL_VERSION OUT.img
set -eu
ROOT=${1:?usage: image/initrd.sh ROOTFS_DIR KERNEL_VERSION OUT}
KVER=${2:?kernel version}
OUT=${3:?output file}
MODS=$ROOT/lib/modules/$KVER
[ -d "$MODS" ] || { echo "initrd.sh: no modules for $KVER in $ROOT" >&2; exit 1; }
[ -x "$ROOT/bin/busybox" ] || { echo "initrd.sh: $ROOT/bin/busybox missing (busybox-static)" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT INT TERM
mkdir -p "$W/bin" "$W/dev" "$W/proc" "$W/sys" "$W/root" "$W/run" "$W/lib/modules/$KVER" "$W/etc"
cp "$ROOT/bin/busybox" "$W/bin/busybox"
# Module directories that can stand between the kernel and an ext4 root on a Pi (SD: sdhci-iproc,
# bcm2835 sdhost, Pi 5 sdhci-brcmstb; USB boot: dwc2, xhci over Pi 4's PCIe, usb-storage, uas) or
# under qemu -M virt (virtio), plus their dependencies from modules.dep.
WANT="kernel/drivers/mmc kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko
  kernel/drivers/usb/host kernel/drivers/usb/storage kernel/drivers/usb/dwc2 kernel/drivers/usb/core
  kernel/drivers/usb/common kernel/drivers/scsi/sd_mod.ko kernel/drivers/pci/controller
  kernel/drivers/reset kernel/drivers/firmware/raspberrypi.ko kernel/drivers/clk/bcm
  kernel/drivers/mailbox kernel/drivers/phy kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko
  kernel/crypto/crc32c_generic.ko kernel/lib"
list=$W/mods.txt
: > "$list"
for w in $WANT; do
    # A single module may be compressed (trixie: .ko.xz).
    for c in "" .xz .zst; do
        if [ -e "$MODS/$w$c" ]; then (cd "$MODS" && find "$w$c" -name '*.ko*') >> "$list"; fi
    done
done
# Dependency closure (modules.dep: "path: dep dep ...").
i=0
while [ $i -lt 10 ]; do
    before=$(sort -u "$list" | wc -l)
    awk -F': *' 'NR==FNR {want[$1]=1; next} ($1 in want) {n=split($2, d, " "); for (k=1;k<=n;k++) print d[k]}' \
        "$list" "$MODS/modules.dep" >> "$list"
    sort -u "$list" -o "$list"
    [ "$(wc -l < "$list")" -eq "$before" ] && break
    i=$((i + 1))
done
(cd "$MODS" && cpio --quiet -pdm "$W/lib/modules/$KVER" < "$list")
for f in modules.dep modules.alias modules.symbols modules.builtin modules.builtin.modinfo modules.order modules.softdep; do
    [ -e "$MODS/$f" ] && cp "$MODS/$f" "$W/lib/modules/$KVER/"
done
# trixie's kernel ships its modules xz-compressed (bookworm's are plain .ko): decompress them here,
# natively, so that busybox's modprobe need not, and name the plain files in modules.dep.
if [ -n "$(find "$W/lib/modules/$KVER" -name '*.ko.xz' -o -name '*.ko.zst' | head -1)" ]; then
    find "$W/lib/modules/$KVER" -name '*.ko.xz' -exec xz -d {} +
    find "$W/lib/modules/$KVER" -name '*.ko.zst' -exec zstd -q -d --rm {} +
    for f in modules.dep modules.order; do
        [ -e "$W/lib/modules/$KVER/$f" ] && sed -i 's/\.ko\.\(xz\|zst\)/.ko/g' "$W/lib/modules/$KVER/$f"
    done
fi
cat > "$W/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
say() { echo "mooseherd-initrd: $*" > /dev/kmsg 2>/dev/null || echo "mooseherd-initrd: $*"; }
root=""; rootfstype=ext4; flags=ro; init=/sbin/init; wait=30
for a in $(cat /proc/cmdline); do
    case "$a" in
        root=*) root=${a#root=} ;;
        rootfstype=*) rootfstype=${a#rootfstype=} ;;
        rootdelay=*) wait=${a#rootdelay=} ;;
        init=*) init=${a#init=} ;;
        rw) flags=rw ;;
    esac
done
for m in crc32c_generic ext4 virtio_pci virtio_mmio virtio_blk mmc_block sdhci_iproc bcm2835 sdhci_brcmstb \
         pcie_brcmstb xhci_pci xhci_plat_hcd dwc2 usb_storage uas sd_mod; do
    modprobe -q "$m" 2>/dev/null
done
coldplug() { cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u | xargs -r modprobe -q -a 2>/dev/null; }
coldplug
n=0; dev=""
while [ $n -lt $((wait * 4)) ]; do
    case "$root" in
        LABEL=*|UUID=*|PARTUUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
        *) dev=$root ;;
    esac
    [ -n "$dev" ] && [ -b "$dev" ] && break
    [ $((n % 8)) -eq 0 ] && coldplug
    n=$((n + 1)); sleep 0.25
done
if [ -z "$dev" ] || [ ! -b "$dev" ]; then
    say "root device $root did not appear within $wait s; modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
    sleep 5
    exit 1
fi
if ! mount -t "$rootfstype" -o "$flags" "$dev" /root; then
    say "cannot mount $dev ($rootfstype) on /root"
    sleep 5
    exit 1
fi
mount --move /dev /root/dev 2>/dev/null || umount /dev
umount /proc /sys
exec switch_root /root "$init"
INIT
chmod 755 "$W/init"
rm -f "$list"
(cd "$W" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -1 > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
