#!/bin/sh
# PID 1 of a DRBD test VM (image/test-drbd): no systemd, just what the drill needs. The kernel
# command line says which node this is: mh.node=a|b mh.addr=10.99.0.N.
#
# a: the old primary whose agent is dead (the case DRBD's fence-peer handler exists for). It
#    writes numbered 4 KiB blocks through /dev/drbd0 with O_DIRECT|O_DSYNC and logs each
#    acknowledged one. When b cuts the link, DRBD freezes a's IO and asks `mooseherd drbd
#    fence-peer`, which cannot reach an agent holding the lease and answers 1: IO must stay frozen.
# b: the new leader: its agent holds the lease. It cuts its link, promotes (its own fence-peer
#    call is answered 7 by the lease), writes, and reads back every block a acknowledged.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# util-linux's mount is not in this minimal root; busybox-static's is.
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
busybox mount -t tmpfs tmpfs /run
busybox mount -t tmpfs tmpfs /tmp
mkdir -p /run/lock /var/run/drbd /run/drbd
node=""; addr=""
for a in $(cat /proc/cmdline); do
    case "$a" in
        mh.node=*) node=${a#mh.node=} ;;
        mh.addr=*) addr=${a#mh.addr=} ;;
    esac
done
say() { echo "MH[$node] $(cut -d' ' -f1 /proc/uptime) $*" > /dev/ttyS0; }
finish() { say "DONE"; sync; echo o > /proc/sysrq-trigger; sleep 30; exit 1; }
hostname "$node"
# No udev here: load the NIC driver by hand.
modprobe virtio_net
n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.2; n=$((n + 1)); done
ip link set lo up
ip link set eth0 up
ip addr add "$addr/24" dev eth0
modprobe drbd || { say "FAIL no drbd module"; finish; }
say "drbd module: $(head -1 /proc/drbd)"
mkdir -p /etc/drbd.d
mooseherd drbd resource-file --config /etc/mooseherd/rack.toml > /etc/drbd.d/mfsmeta.res || { say "FAIL resource file"; finish; }
drbdadm create-md --force mfsmeta > /run/create-md.log 2>&1 || { say "FAIL create-md: $(tail -3 /run/create-md.log)"; finish; }
# drbdadm gives each drbdsetup call 5 s; under emulation on a busy host that can run out. `adjust`
# completes a half-done `up` (attach, connect), so retry it a few times.
n=0
until drbdadm up mfsmeta 2>/run/up.err || drbdadm adjust mfsmeta 2>>/run/up.err; do
    n=$((n + 1)); [ $n -lt 5 ] || { say "FAIL drbdadm up: $(tail -2 /run/up.err)"; finish; }
    sleep 2
done
say "up"
cstate() { drbdadm cstate mfsmeta 2>/dev/null; }
dstate() { drbdadm dstate mfsmeta 2>/dev/null; }
wait_for() { # wait_for SECONDS CMD...: poll every 0.2 s
    n=$(( $1 * 5 )); shift
    while [ $n -gt 0 ]; do "$@" && return 0; n=$((n - 1)); sleep 0.2; done
    return 1
}
connected() { [ "$(cstate)" = Connected ]; }
synced() { [ "$(dstate)" = UpToDate/UpToDate ]; }
wait_for 120 connected || { say "FAIL not connected: $(cstate)"; finish; }
say "connected"

write_block() { # write_block N: block N holds "seq N" (O_DIRECT, O_DSYNC: acknowledged = on disk)
    printf 'seq %08d\n' "$1" | dd of=/dev/drbd0 bs=4096 seek="$1" conv=sync,notrunc oflag=direct,dsync status=none
}

if [ "$node" = a ]; then
    drbdadm primary --force mfsmeta || { say "FAIL primary"; finish; }
    wait_for 300 synced || { say "FAIL sync: $(dstate)"; finish; }
    say "primary, in sync"
    : > /run/acks
    ( i=1; while [ $i -le 20000 ]; do write_block $i || break; echo $i >> /run/acks; i=$((i + 1)); done ) &
    # Until the freeze: report progress; after the link is cut, watch that no ack comes.
    wait_for 300 sh -c '[ "$(drbdadm cstate mfsmeta)" != Connected ]'
    cut_acks=$(wc -l < /run/acks)
    say "peer lost (cstate $(cstate)); acknowledged so far: $cut_acks"
    sleep 45
    final=$(wc -l < /run/acks)
    say "state: $(sed -n 3p /proc/drbd)"
    say "ACKED $final (at cut $cut_acks, after cut $((final - cut_acks)))"
    say "ACKLAST $(tail -1 /run/acks)"
    dmesg | grep -i 'fence-peer\|helper' | while read -r l; do say "kernel: $l"; done
    finish
fi

if [ "$node" = b ]; then
    wait_for 300 synced || { say "FAIL sync: $(dstate)"; finish; }
    # The new leader: an agent (dry-run host: it only holds the lease here) on a one-voter rack.
    mkdir -p /run/mooseherd /run/mh-state
    mooseherd agent --config /etc/mooseherd/agent-rack.toml --host dry-run --state-dir /run/mh-state > /run/agent.log 2>&1 &
    wait_for 60 sh -c 'mooseherd status --json --config /etc/mooseherd/agent-rack.toml 2>/dev/null | grep -q "\"role\": *\"leader\""' \
        || say "agent status: $(mooseherd status --config /etc/mooseherd/agent-rack.toml 2>&1 | head -5)"
    say "agent: $(mooseherd status --config /etc/mooseherd/agent-rack.toml 2>&1 | head -3 | tr '\n' ' ')"
    sleep 10
    say "CUT link"
    t_cut=$(cut -d' ' -f1 /proc/uptime)
    ip link set eth0 down
    # Promote as soon as DRBD lets us: it must notice the loss, then our own fence-peer handler
    # must say yes (the lease is ours).
    n=0
    until drbdadm primary mfsmeta 2>/run/primary.err; do
        n=$((n + 1)); [ $n -lt 300 ] || { say "FAIL promote: $(tail -2 /run/primary.err)"; finish; }
        sleep 0.2
    done
    t_prim=$(cut -d' ' -f1 /proc/uptime)
    write_block 30000
    t_write=$(cut -d' ' -f1 /proc/uptime)
    say "PRIMARY $(awk -v a="$t_prim" -v b="$t_cut" 'BEGIN{printf "%.2f", a-b}') s after the cut; FIRSTWRITE $(awk -v a="$t_write" -v b="$t_cut" 'BEGIN{printf "%.2f", a-b}') s after the cut"
    # Read back every block a may have acknowledged (up to 100000) and list the highest contiguous.
    dd if=/dev/drbd0 bs=4096 count=20001 iflag=direct status=none 2>/dev/null | tr -d '\000' | grep -a '^seq ' > /run/blocks
    say "BLOCKS $(wc -l < /run/blocks) LAST $(tail -1 /run/blocks)"
    say "HAVE $(awk '{print $2+0}' /run/blocks | sort -n | awk 'BEGIN{e=1} $1==e{e++} END{print e-1}')"
    dmesg | grep -i 'fence-peer\|helper' | while read -r l; do say "kernel: $l"; done
    grep -i 'lease\|leader' /run/agent.log | head -3 | while read -r l; do say "agent: $l"; done
    finish
fi
say "FAIL unknown node $node"
finish
