#!/bin/sh
# Assembles a Raspberry Pi SD-card image from two directories, without loop devices or root:
# an MBR (the Pi 3's boot ROM reads only MBR) with a bootable FAT32 partition `BOOT` (LBA type c,
# starting at 4 MiB like Raspberry Pi OS) and an ext4 partition `ROOT` written straight into the
# image file by `mkfs.ext4 -d DIR -E offset=`. Run as root to keep file owners in ROOT_DIR.
#
#   image/assemble.sh ROOT_DIR BOOT_DIR OUT.img [BOOT_MIB] [ROOT_FREE_MIB]
set -eu
ROOT=${1:?usage: image/assemble.sh ROOT_DIR BOOT_DIR OUT.img [BOOT_MIB] [ROOT_FREE_MIB]}
BOOT=${2:?boot dir}
OUT=${3:?output image}
BOOT_MIB=${4:-256}
FREE_MIB=${5:-512}
for t in sfdisk mkfs.vfat mcopy mkfs.ext4; do
    command -v $t >/dev/null || { echo "assemble.sh: $t missing (run image/deps.sh)" >&2; exit 1; }
done
used_mib=$(du -sm --apparent-size "$ROOT" | cut -f1)
inodes=$(find "$ROOT" | wc -l)
# ext4 metadata (inode tables, journal) plus room to grow.
root_mib=$(( used_mib + used_mib / 5 + FREE_MIB + 64 ))
start1=8192
boot_sectors=$(( BOOT_MIB * 2048 ))
start2=$(( start1 + boot_sectors ))
root_sectors=$(( root_mib * 2048 ))
total=$(( start2 + root_sectors ))
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT INT TERM
rm -f "$OUT"
truncate -s $(( total * 512 )) "$OUT"
sfdisk -q "$OUT" <<PT
label: dos
unit: sectors

start=$start1, size=$boot_sectors, type=c, bootable
start=$start2, size=$root_sectors, type=83
PT
mkfs.vfat -F 32 -n BOOT -C "$W/boot.vfat" $(( BOOT_MIB * 1024 )) >/dev/null
if [ -n "$(ls -A "$BOOT")" ]; then
    # MTOOLS_SKIP_CHECK: mtools refuses some valid small FAT32 geometries otherwise.
    MTOOLS_SKIP_CHECK=1 mcopy -s -Q -m -i "$W/boot.vfat" "$BOOT"/* ::/
fi
dd if="$W/boot.vfat" of="$OUT" bs=1M seek=$(( start1 / 2048 )) conv=notrunc,sparse status=none
mkfs.ext4 -q -F -L ROOT -m 1 -N $(( inodes + inodes / 2 + 16384 )) -d "$ROOT" \
    -E offset=$(( start2 * 512 )) "$OUT" "${root_mib}M"
echo "assemble.sh: $OUT: boot ${BOOT_MIB} MiB at sector $start1, root ${root_mib} MiB (${used_mib} MiB used) at sector $start2" >&2
