# Shared helpers of the image scripts (sourced). Loop-free: partitions are found with sfdisk and
# read/written with mtools (FAT) and debugfs (ext4) at byte offsets into the image file.

die() { echo "${0##*/}: $*" >&2; exit 1; }

# part_field IMG N FIELD -> start|size|type of partition N (sectors; type as sfdisk prints it).
part_field() {
    sfdisk -d "$1" 2>/dev/null | awk -v n="$2" -v f="$3" '
        $2 == ":" { i++; if (i != n) next
            line = $0; sub(/^[^:]*: */, "", line); k = split(line, kv, /, */)
            for (j = 1; j <= k; j++) { split(kv[j], p, "="); gsub(/ /, "", p[1]); gsub(/ /, "", p[2])
                if (p[1] == f && f != "bootable") print p[2]; if (f == "bootable" && kv[j] ~ /bootable/) print "yes" } }'
}

# The first FAT and the first Linux partition of an image (Raspberry Pi OS: 1 and 2).
find_parts() {
    IMG=$1; BOOT_PART=""; ROOT_PART=""
    n=1
    while [ $n -le 4 ]; do
        t=$(part_field "$IMG" $n type)
        case "$t" in
            b|c|e|ef) [ -n "$BOOT_PART" ] || BOOT_PART=$n ;;
            83) [ -n "$ROOT_PART" ] || ROOT_PART=$n ;;
        esac
        n=$((n + 1))
    done
    [ -n "$BOOT_PART" ] || die "$IMG has no FAT partition (sfdisk -l $IMG)"
    [ -n "$ROOT_PART" ] || die "$IMG has no Linux partition (sfdisk -l $IMG)"
    BOOT_OFF=$(( $(part_field "$IMG" "$BOOT_PART" start) * 512 ))
    ROOT_OFF=$(( $(part_field "$IMG" "$ROOT_PART" start) * 512 ))
    MTOOLS_SKIP_CHECK=1; export MTOOLS_SKIP_CHECK
    FAT="$IMG@@$BOOT_OFF"
    EXT="$IMG?offset=$ROOT_OFF"
}

# is_aarch64 FILE: an ELF for aarch64 (e_machine 0xb7 at byte 18).
is_aarch64() {
    [ "$(head -c 4 "$1" | od -An -c | tr -d ' \n')" = "177ELF" ] &&
    [ "$(od -An -tx1 -j 18 -N 2 "$1" | tr -d ' \n')" = "b700" ]
}

# ext_stat IMG_SPEC PATH -> prints "type mode uid" of PATH in the ext4 filesystem, or nothing.
ext_stat() {
    debugfs -R "stat $2" "$1" 2>/dev/null | awk '
        /^Inode:/ { for (i = 1; i <= NF; i++) { if ($i == "Type:") t = $(i+1); if ($i == "Mode:") m = $(i+1) } }
        /^User:/ { u = $2 }
        END { if (t != "") print t, m, u }'
}

# os_codename IMG_SPEC -> VERSION_CODENAME of the ext4 root (bookworm, trixie...), or nothing.
# /etc/os-release is a symlink to /usr/lib/os-release, which debugfs's cat does not follow.
os_codename() {
    for f in /usr/lib/os-release /etc/os-release; do
        c=$(debugfs -R "cat $f" "$1" 2>/dev/null | sed -n 's/^VERSION_CODENAME=//p' | tr -d '"')
        [ -z "$c" ] || { echo "$c"; return; }
    done
}

# The root filesystem of the DRBD VM tiers (image/test-drbd, image/test-drbd-agent): Debian
# bookworm amd64 (linux-image-amd64 carries the in-tree DRBD 8.4 module), MooseFS and
# drbd-utils, no systemd. Built once with mmdebstrap and cached as a tarball keyed by the
# package list; prints the tarball's path.
DRBD_VM_PKGS="linux-image-amd64 drbd-utils busybox-static kmod iproute2 procps util-linux mawk
  e2fsprogs fuse3 moosefs-master moosefs-chunkserver moosefs-client"
drbd_vm_rootfs() { # drbd_vm_rootfs CACHE_DIR
    mirror=${MOOSEHERD_MIRROR:-http://deb.debian.org/debian}
    pkgs=$(echo $DRBD_VM_PKGS)
    tar=$1/drbd-rootfs-$(echo "bookworm $mirror $pkgs" | sha256sum | cut -c1-16).tar
    mkdir -p "$1"
    if [ ! -s "$tar" ]; then
        mmdebstrap --variant=apt --format=tar --include="$(echo $pkgs | tr ' ' ',')" \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
            bookworm "$tar.tmp" "deb $mirror bookworm main" >&2 || return 1
        mv "$tar.tmp" "$tar"
    fi
    echo "$tar"
}

# vm_accel WORKDIR -> "kvm" if a Debian amd64 kernel boots under KVM here, else "tcg". /dev/kvm
# alone proves nothing: a nested host may offer KVM that this kernel cannot run on (kvm-pvm
# needs PVM guests). The probe boots WORKDIR/vmlinuz without a root (it panics at once under
# working KVM). MOOSEHERD_VM_ACCEL=kvm|tcg skips it.
vm_accel() {
    if [ -n "${MOOSEHERD_VM_ACCEL:-}" ]; then echo "$MOOSEHERD_VM_ACCEL"; return; fi
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo tcg; return; }
    timeout 20 qemu-system-x86_64 -accel kvm -machine pc -smp 1 -m 256 -display none -no-reboot \
        -monitor none -serial file:"$1/kvm-probe.log" -kernel "$1/vmlinuz" \
        -append "console=ttyS0 panic=-1" > /dev/null 2>&1 || true
    if grep -aq 'Kernel panic' "$1/kvm-probe.log" 2>/dev/null; then echo kvm; else echo tcg; fi
}
