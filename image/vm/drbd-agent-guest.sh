#!/bin/sh
# PID 1 of the agent DRBD VMs (image/test-drbd-agent): no systemd. Kernel command line:
# mh.node=a|b mh.addr=10.99.0.N. Lines for the host start with MH[node] (this script) or
# A[node] (an agent's log); the host stamps every console line with its own clock.
#
# a: node a (master candidate, first leader). b: node b (master candidate, chunkserver) and
#    node c (voter, worker: mfsmount on /mnt/mfs), and the writer: one fsync'd file per record
#    through c's mount, each acknowledged one logged as "ACK n". The host faults a, then writes
#    "stop" on b's second serial port: b stops the writer and reads back every acknowledged file.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
busybox mount -t tmpfs tmpfs /run
busybox mount -t tmpfs tmpfs /tmp
mkdir -p /run/lock /var/run/drbd /run/drbd /run/mooseherd /run/mh-state /run/mh-c
node=""; addr=""
for a in $(cat /proc/cmdline); do
    case "$a" in
        mh.node=*) node=${a#mh.node=} ;;
        mh.addr=*) addr=${a#mh.addr=} ;;
    esac
done
say() { echo "MH[$node] $*" > /dev/ttyS0; }
finish() { say "DONE"; sync; echo o > /proc/sysrq-trigger; sleep 30; exit 1; }
hostname "$node"
modprobe virtio_net
n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.2; n=$((n + 1)); done
ip link set lo up
ip link set eth0 up
ip addr add "$addr/24" dev eth0
[ "$node" = b ] && ip addr add 10.99.0.3/24 dev eth0
modprobe fuse
modprobe drbd || { say "FAIL no drbd module"; finish; }
# DRBD's state changes (KERN_INFO) on the console, stamped by the host: the fencing evidence.
dmesg -n 7
mkdir -p /etc/drbd.d
mooseherd drbd resource-file --config /etc/mooseherd/rack.toml > /etc/drbd.d/mfsmeta.res || { say "FAIL resource file"; finish; }
drbdadm create-md --force mfsmeta > /run/create-md.log 2>&1 || { say "FAIL create-md: $(tail -3 /run/create-md.log)"; finish; }
n=0
until drbdadm up mfsmeta 2>/run/up.err || drbdadm adjust mfsmeta 2>>/run/up.err; do
    n=$((n + 1)); [ $n -lt 5 ] || { say "FAIL drbdadm up: $(tail -2 /run/up.err)"; finish; }
    sleep 2
done
drbdline() { sed -n 's/^ *0: //p' /proc/drbd; }
wait_for() { # wait_for SECONDS CMD...: poll every 0.2 s
    n=$(( $1 * 5 )); shift
    while [ $n -gt 0 ]; do "$@" && return 0; n=$((n - 1)); sleep 0.2; done
    return 1
}
has() { drbdline | grep -q "$1"; }
wait_for 180 has 'cs:Connected' || { say "FAIL not connected: $(drbdline)"; finish; }
say "drbd connected"

# Set-up a person does once per rack: both disks are zeros, so no initial sync is needed
# (new-current-uuid --clear-bitmap); a makes the ext4 filesystem with an empty MooseFS in it.
# The agents do the rest.
if [ "$node" = a ]; then
    drbdadm -- --clear-bitmap new-current-uuid mfsmeta 2>/run/uuid.err ||
        drbdadm new-current-uuid --clear-bitmap mfsmeta 2>>/run/uuid.err ||
        { say "FAIL new-current-uuid: $(tail -2 /run/uuid.err)"; finish; }
    wait_for 60 has 'ds:UpToDate/UpToDate' || { say "FAIL not UpToDate: $(drbdline)"; finish; }
    drbdadm primary mfsmeta || { say "FAIL primary"; finish; }
    mkfs.ext4 -q -F /dev/drbd0 > /run/mkfs.log 2>&1 || { say "FAIL mkfs: $(tail -2 /run/mkfs.log)"; finish; }
    mkdir -p /run/meta && busybox mount -t ext4 /dev/drbd0 /run/meta &&
        cp /var/lib/mfs/metadata.mfs.empty /run/meta/metadata.mfs && chown -R mfs:mfs /run/meta &&
        busybox umount /run/meta || { say "FAIL new MooseFS metadata"; finish; }
    drbdadm secondary mfsmeta || { say "FAIL secondary"; finish; }
    say "disk ready"
else
    # Wait for a's set-up: its disk primary (mkfs), then secondary again.
    wait_for 300 has 'ro:Secondary/Primary' || { say "FAIL a never primary: $(drbdline)"; finish; }
    wait_for 300 has 'ro:Secondary/Secondary ds:UpToDate/UpToDate' || { say "FAIL a not back: $(drbdline)"; finish; }
    say "disk ready"
fi

agent() { # agent NODE [OPTIONS]: an agent whose log goes to the console as "A[NODE] ..."
    name=$1; shift
    ( mooseherd agent --config /etc/mooseherd/rack.toml --node "$name" "$@" 2>&1 |
        sed -u "s/^/A[$name] /" > /dev/ttyS0 ) &
}
# The DRBD line whenever it changes (every 0.5 s): role, connection, disk, IO frozen (flag s).
( last=""; while :; do l=$(drbdline); [ "$l" != "$last" ] && say "drbd: $l"; last=$l; sleep 0.5; done ) &
if [ "$node" = a ]; then
    agent a
    while :; do sleep 3600; done
fi

# Nothing may be written under /mnt/mfs unless MooseFS is mounted there: c's agent lazily
# unmounts a dead mount, and the writer must then fail, not write to the root filesystem.
mkdir -p /mnt/mfs && chattr +i /mnt/mfs || { say "FAIL chattr +i /mnt/mfs"; finish; }
# a must be the first leader (the drills fault a; b's VM carries the writer). Whoever stands
# first wins and a leader is never pre-empted, so b's agent starts only once a leads: c's vote
# gives a its majority.
agent c --socket /run/mh-c/control --state-dir /run/mh-c
a_leads() {
    mooseherd status --json --config /etc/mooseherd/rack.toml --socket /run/mh-c/control 2>/dev/null |
        tr -d ' \n' | grep -q '"leader":0,'
}
wait_for 300 a_leads || { say "FAIL a was not elected with c's vote"; finish; }
say "a leads"
agent b
# What the writer's mount looks like from inside, when it never becomes writable.
mount_diag() {
    say "DIAG mounts: $(grep ' /mnt/mfs ' /proc/mounts | tr '\n' ' ')"
    for p in $(pgrep mfsmount); do
        for t in /proc/$p/task/*; do say "DIAG mfsmount $p task ${t##*/} $(cut -d' ' -f3 $t/stat) $(cat $t/wchan 2>/dev/null)"; done
    done
    tail -15 /run/mh-c/mfs/mfsmount.log 2>/dev/null | while read -r l; do say "DIAG mfsmount.log: $l"; done
}
# The writer: through c's mount at the VIP, once mounted and writable. The check runs in the
# background so a hung mount cannot stop the diagnosis.
mounted() { grep -q ' /mnt/mfs fuse' /proc/mounts && mkdir -p /mnt/mfs/w 2>/dev/null; }
( wait_for 300 mounted && touch /run/mounted ) &
wait_for 310 test -e /run/mounted || { say "FAIL /mnt/mfs not mounted and writable"; mount_diag; finish; }
: > /run/acks
# A stall watchdog: when no record has been acknowledged for 30 s, the MooseFS logs go to the
# console once (the client's retries, the chunkserver's and the master's view of the chunk).
(
    last=""; same=0; dumped=""
    while [ ! -e /run/stop ]; do
        sleep 5
        n=$(wc -l < /run/acks)
        if [ "$n" = "$last" ]; then same=$((same + 5)); else same=0; last=$n; dumped=""; fi
        if [ $same -ge 30 ] && [ -z "$dumped" ]; then
            say "DIAG no write acknowledged for $same s (last ACK $n)"
            mount_diag
            for f in /run/mh-state/mfs/mfschunkserver.log /run/mh-state/mfs/mfsmaster.log; do
                tail -12 "$f" 2>/dev/null | while read -r l; do say "DIAG ${f##*/}: $l"; done
            done
            dumped=1
        fi
    done
) &
(
    i=1
    say "WRITER start"
    while [ ! -e /run/stop ]; do
        if printf 'rec %08d\n' "$i" | dd of=/mnt/mfs/w/$i conv=fsync status=none 2>/run/werr; then
            echo "$i" >> /run/acks
            say "ACK $i"
            i=$((i + 1))
        else
            say "WERR $i $(head -c 120 /run/werr | tr '\n' ' ')"
            sleep 0.2
        fi
    done
    touch /run/stopped
) &
# Commands from the host on the second serial port.
stty -F /dev/ttyS1 raw -echo 2>/dev/null
while read -r cmd < /dev/ttyS1; do
    case "$cmd" in stop*) break ;; esac
done
touch /run/stop
wait_for 120 test -e /run/stopped || say "writer did not stop"
acked=$(wc -l < /run/acks)
lost=0
for i in $(cat /run/acks); do
    [ "$(cat /mnt/mfs/w/$i 2>/dev/null)" = "$(printf 'rec %08d' "$i")" ] || { lost=$((lost + 1)); say "LOST $i"; }
done
say "VERIFY acked $acked lost $lost last $(tail -1 /run/acks)"
finish
