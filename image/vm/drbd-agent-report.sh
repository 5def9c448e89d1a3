# Judges a run of image/test-drbd-agent from its host-stamped logs (sourced; `report DIR`).
# DIR holds console-a.log, console-b.log (each line: "HOSTTIME text") and host.log ("HOSTTIME
# HOST FAULT drill").

# first_after FILE T PATTERN -> host time of the first line after T matching PATTERN.
first_after() {
    awk -v t="$2" -v re="$3" '$1 + 0 > t + 0 && $0 ~ re { print $1; exit }' "$1"
}
last_before() {
    awk -v t="$2" -v re="$3" '$1 + 0 <= t + 0 && $0 ~ re { l = $1 } END { if (l != "") print l }' "$1"
}
rel() { [ -n "$2" ] && awk -v a="$2" -v b="$1" 'BEGIN { printf "%.2f", a - b }' || echo "?"; }

report() {
    W=$1
    fault=$(awk '/HOST FAULT/ { print $1 }' "$W/host.log")
    drill=$(awk '/HOST FAULT/ { print $4 }' "$W/host.log")
    [ -n "$fault" ] || die "no fault in $W/host.log"
    # The time line: what both nodes did from 3 s before the fault until 40 s after b's promotion.
    b_primary=$(first_after "$W/console-b.log" "$fault" 'A\[b\].*DRBD mfsmeta primary in')
    until_t=$(awk -v p="${b_primary:-$fault}" 'BEGIN { printf "%.3f", p + 40 }')
    pat='A\[[abc]\].*(elected|leader is|stepping down|fenced|mfsmaster|VIP|metadata|DRBD|primary|secondary|host action failed|member is down|start mfs|mount)|drbd0|drbd mfsmeta|fence-peer|MH\[.\] (drbd:|WERR)'
    for n in a b; do
        awk -v n="$n" -v f="$fault" -v u="$until_t" -v re="$pat" \
            '$1 + 0 >= f - 3 && $1 + 0 <= u && $0 ~ re && $0 !~ /refresh the VIP/ {
                t = $1; $1 = ""; printf "%+8.2f  [%s]%s\n", t - f, n, $0 }' "$W/console-$n.log"
    done | sort -n > "$W/timeline.log"
    echo "test-drbd-agent: time line (s from the fault; [a]/[b] = whose console):"
    cut -c1-220 "$W/timeline.log"
    fail=""
    last_ack=$(last_before "$W/console-b.log" "$fault" 'MH\[b\] ACK ')
    # A write acknowledged within 0.25 s of the fault was in flight before it (as in the lab).
    first_ack=$(first_after "$W/console-b.log" "$(awk -v f="$fault" 'BEGIN { printf "%.3f", f + 0.25 }')" 'MH\[b\] ACK ')
    verify=$(grep -a 'MH\[b\] .*VERIFY' "$W/console-b.log" | tail -1)
    acked=$(echo "$verify" | sed -n 's/.*VERIFY acked \([0-9]*\) lost.*/\1/p')
    lost=$(echo "$verify" | sed -n 's/.*VERIFY acked [0-9]* lost \([0-9]*\).*/\1/p')
    echo "test-drbd-agent: drill $drill; last acknowledged write $(rel "$fault" "$last_ack") s, first after the fault +$(rel "$fault" "$first_ack") s"
    echo "test-drbd-agent: b DRBD primary +$(rel "$fault" "$b_primary") s; b mfsmaster started +$(rel "$fault" "$(first_after "$W/console-b.log" "$fault" 'A\[b\].*start mfsmaster')") s; VIP added on b +$(rel "$fault" "$(first_after "$W/console-b.log" "$fault" 'A\[b\].*add the VIP')") s"
    echo "test-drbd-agent: writes acknowledged ${acked:-?}, lost ${lost:-?}"
    [ -n "$first_ack" ] || fail="no write acknowledged after the fault"
    [ -n "$b_primary" ] || fail="${fail:-b never became DRBD primary}"
    [ "${lost:-x}" = 0 ] || fail="${fail:-writes lost: ${lost:-no verification}}"
    # Fencing: the old primary's mfsmaster is gone, and its DRBD no longer primary or its IO
    # frozen, before b is promoted.
    case "$drill" in
        kill-leader)
            a_last=$(tail -1 "$W/console-a.log" | cut -d' ' -f1)
            echo "test-drbd-agent: fencing: a powered off at the fault (its console's last line $(rel "$fault" "$a_last") s); b promoted +$(rel "$fault" "$b_primary") s"
            ;;
        partition-leader)
            a_stop=$(first_after "$W/console-a.log" "$fault" 'A\[a\].*(mfsmaster stopped|the killed mfsmaster has exited)')
            a_umount=$(first_after "$W/console-a.log" "$fault" 'A\[a\].*metadata disk unmounted')
            a_sec=$(first_after "$W/console-a.log" "$fault" 'A\[a\].*DRBD mfsmeta secondary')
            a_vip=$(first_after "$W/console-a.log" "$fault" 'A\[a\].*remove the VIP')
            a_frozen=$(first_after "$W/console-a.log" "$fault" 'MH\[a\] drbd: .* ro:Primary/[A-Za-z]* .* s-')
            echo "test-drbd-agent: fencing on a: VIP removal started +$(rel "$fault" "$a_vip") s, mfsmaster stopped +$(rel "$fault" "$a_stop") s, unmounted +$(rel "$fault" "$a_umount") s, DRBD secondary +$(rel "$fault" "$a_sec") s$( [ -n "$a_frozen" ] && echo ", IO frozen seen +$(rel "$fault" "$a_frozen") s"); b primary +$(rel "$fault" "$b_primary") s"
            if [ -z "$a_stop" ] || [ -z "$b_primary" ] ||
                awk -v a="$a_stop" -v b="$b_primary" 'BEGIN { exit !(a + 0 >= b + 0) }'; then
                fail="${fail:-a's mfsmaster was not stopped before b's promotion}"
            fi
            if [ -z "$a_sec" ]; then
                fail="${fail:-a never became DRBD secondary: its fencing did not finish}"
            elif [ -n "$a_sec" ] && [ -n "$b_primary" ] &&
                awk -v a="$a_sec" -v b="$b_primary" 'BEGIN { exit !(a + 0 >= b + 0) }' && [ -z "$a_frozen" ]; then
                # Not a MooseFS write (mfsmaster was gone), but the unmount wrote a's own,
                # disconnected disk after b's promotion; DRBD discards it when a reconnects.
                echo "test-drbd-agent: NOTE: a's DRBD became secondary after b's promotion with IO not frozen (its unmount wrote only its disconnected disk)"
            fi
            ;;
    esac
    grep -a 'MH\[.\] .*FAIL' "$W/console-a.log" "$W/console-b.log" && fail="${fail:-a guest step failed}"
    [ -z "$fail" ] || die "FAIL: $fail"
    echo "test-drbd-agent: PASS"
}
