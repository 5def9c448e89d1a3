#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12 machine, as root, installs what is needed,
# builds mooseherd and MooseFS 4 (once, cached; Debian 12's own is 3.0), brings up a 5-node lab
# rack (network namespaces, real MooseFS 4, shared-dir replication) and runs the kill-leader
# drill. `target/release/mooseherd lab down` removes it.
#   scripts/lab.sh [--replication shared-dir|metalogger] [--moosefs 3|4]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/moosefs.sh build
cargo build --release --quiet
bin=target/release/mooseherd
if [ -e /var/tmp/mooseherd-lab/lab.json ] || ip netns list 2>/dev/null | grep -q '^mhlab-'; then
  echo "lab: removing the previous lab rack"
  "$bin" lab down
fi
"$bin" lab up --nodes 5 "$@"
"$bin" lab drill kill-leader
echo
echo "The lab rack is still up: $bin lab status | $bin lab exec pi4 -- mfscli -H 10.213.0.50 -SIN | $bin lab down"
