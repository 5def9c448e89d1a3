#!/usr/bin/env bash
# A real Kubernetes control plane + MooseFS for the provisioner's tests and benchmark, inside a
# network namespace of its own (mhkube-$KUBE_PORT_BASE): nothing listens on the host's network.
#
#   scripts/kube.sh build         build kube-apiserver + kube-controller-manager 1.20 from Debian's
#                                 `kubernetes` source package (once; cached, see below) and install etcd
#   scripts/kube.sh start DIR     start etcd + kube-apiserver + kube-controller-manager, and a real
#                                 MooseFS (mfsmaster + mfschunkserver + mfsmount at DIR/mfs), with
#                                 state, certificates and logs in DIR; writes DIR/kubeconfig and
#                                 DIR/env (KUBECONFIG=..., MOOSEHERD_TEST_MFS=...,
#                                 MOOSEHERD_TEST_NETNS=/run/netns/...: run clients with
#                                 `nsenter --net=$MOOSEHERD_TEST_NETNS`)
#   scripts/kube.sh mfs-start DIR only the MooseFS part of `start`
#   scripts/kube.sh stop DIR      unmount, stop what `start DIR` started (by the PIDs it recorded)
#                                 and remove DIR
#
# Needs root and Debian 12. The build takes 9-22 minutes on 2 cores from an empty cache (22 when the
# cores are shared with other builds); its binaries are
# kept in $MOOSEHERD_KUBE_CACHE (default /var/cache/mooseherd-kube/<debian source version>/bin), so
# every later run starts in seconds. Ports: $KUBE_PORT_BASE (default 36440) + 0..7, on
# 127.0.0.1 (Kubernetes) and 10.215.0.1 (MooseFS) inside the namespace; one base = one instance.
#
# KUBE_MOOSEFS=4 runs the MooseFS part on the MooseFS 4 build of scripts/moosefs.sh (`build` it
# first; default 3: Debian 12's packages); DIR/env then also has MOOSEFS_BIN=DIRS, to put before
# PATH for the tests, so that they drive the same release's client tools.
#
# KUBE_KCM_QPS (default 20, Kubernetes' default) is kube-controller-manager's API rate limit: its PV
# controller needs ~4 writes to annotate and bind one claim, so many claims at once queue behind it.
#
# The recipe (two fixes to Debian's 1.20.2 tree) is explained at each step below.
set -euo pipefail

CACHE_ROOT="${MOOSEHERD_KUBE_CACHE:-/var/cache/mooseherd-kube}"
# The binaries of the last build: $CACHE_ROOT/<source version>/bin, reached through `current`.
BIN="$CACHE_ROOT/current/bin"
PORT_BASE="${KUBE_PORT_BASE:-36440}"

log() { printf 'kube.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=scripts/apt-lib.sh
. "$(dirname "$0")/apt-lib.sh"

build() {
  [ "$(id -u)" = 0 ] || die "building the test control plane needs root (apt-get)"
  if ! have_pkgs etcd-server openssl curl; then
    log "installing etcd-server openssl curl"
    apt-get update -qq
    apt_install etcd-server openssl curl ca-certificates
  fi
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    log "cached: $BIN"
    return 0
  fi
  local t0=$SECONDS
  if ! have_pkgs golang-go dpkg-dev; then
    apt-get update -qq
    apt_install golang-go dpkg-dev
  fi
  # Source packages: a deb-src entry of our own, beside the image's sources.
  local srcs=/etc/apt/sources.list.d/mooseherd-kube-src.sources
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: 1\.20\."; then
    cat >"$srcs" <<'EOF'
# Added by mooseherd scripts/kube.sh: Debian's kubernetes source package for the provisioner tests.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
  fi
  # Debian 12 carries 1.20.5+really1.20.2 (with security updates); the cache is keyed by the exact version.
  local version
  version=$(apt-cache showsrc kubernetes | awk '/^Version: 1\.20\./ {print $2; exit}')
  [ -n "$version" ] || die "no kubernetes 1.20 source package found (is this Debian 12 with deb-src?)"
  log "building kube-apiserver + kube-controller-manager $version (~9 min on 2 cores, once)"
  local work="$CACHE_ROOT/$version/build"
  rm -rf "$work"
  mkdir -p "$work"
  cd "$work"
  apt-get source -qq "kubernetes=$version" >/dev/null 2>&1 || apt-get source -qq "kubernetes=$version" >/dev/null
  local src
  src=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
  [ -n "$src" ] || die "apt-get source kubernetes produced no kubernetes-* directory in $work"
  src=$(cd "$src" && pwd)

  # Fix 1: the vendored reflect2 1.0.1 segfaults under Go >= 1.18 in every json-iterator map encode;
  # Debian's golang-github-modern-go-reflect2-dev is 1.0.2.
  apt-get download -qq golang-github-modern-go-reflect2-dev >/dev/null
  dpkg -x golang-github-modern-go-reflect2-dev_*.deb reflect2
  local r2
  r2=$(dirname "$(find reflect2 -name reflect2.go | head -1)")
  rm -f "$src"/vendor/github.com/modern-go/reflect2/*.go "$src"/vendor/github.com/modern-go/reflect2/*.s
  cp "$r2"/*.go "$src/vendor/github.com/modern-go/reflect2/"
  cp "$r2"/*.s "$src/vendor/github.com/modern-go/reflect2/" 2>/dev/null || true

  # GOPATH mode: module mode with -mod=vendor fails under Go 1.19 for this tree.
  export GO111MODULE=off CGO_ENABLED=0 GOPATH="$work/gopath" GOCACHE="$work/gocache" GOFLAGS=
  mkdir -p "$GOPATH/src/k8s.io"
  ln -sfn "$src" "$GOPATH/src/k8s.io/kubernetes"
  cd "$GOPATH/src/k8s.io/kubernetes"

  # Fix 2: the generated OpenAPI definitions are not in the source package.
  log "generating pkg/generated/openapi"
  go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  local pkgs
  pkgs=$(grep -rl --include='*.go' -e '+k8s:openapi-gen=' pkg cmd plugin staging/src 2>/dev/null \
    | xargs -n1 dirname | sort -u \
    | sed -e 's#^staging/src/#vendor/#' \
    | grep -v -e '^vendor/k8s.io/code-generator' -e 'sample-apiserver' \
    | sed -e 's#^#k8s.io/kubernetes/#' | paste -sd, -)
  "$work/openapi-gen" -i "$pkgs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$work/violations.report" >/dev/null 2>&1 \
    || "$work/openapi-gen" -i "$pkgs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
      -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$work/violations.report"

  local ld="-s -w -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitVersion=v1.20.2"
  ld="$ld -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitMajor=1"
  ld="$ld -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.gitMinor=20"
  mkdir -p "$work/bin"
  local x
  for x in kube-apiserver kube-controller-manager; do
    log "go build $x"
    nice go build -ldflags "$ld" -o "$work/bin/$x" "./cmd/$x"
  done
  mkdir -p "$CACHE_ROOT/$version/bin"
  mv "$work/bin/kube-apiserver" "$work/bin/kube-controller-manager" "$CACHE_ROOT/$version/bin/"
  ln -sfn "$version" "$CACHE_ROOT/current"
  cd /
  # 2.5 GB of source and Go build cache: only the binaries are worth keeping.
  rm -rf "$work"
  log "built in $((SECONDS - t0)) s: $BIN"
}

# --- start / stop -------------------------------------------------------------------------------

certs() {
  local d=$1/pki
  mkdir -p "$d"
  cd "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=mooseherd-test-ca" 2>/dev/null
  sign() { # name subject [san]: X.509 v3 (rustls/webpki refuse v1 certificates)
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    {
      echo "basicConstraints=CA:FALSE"
      echo "keyUsage=critical,digitalSignature,keyEncipherment"
      if [ -n "${3:-}" ]; then
        echo "extendedKeyUsage=serverAuth"
        echo "subjectAltName=$3"
      else
        echo "extendedKeyUsage=clientAuth"
      fi
    } >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
  }
  sign apiserver "/CN=kube-apiserver" "IP:127.0.0.1,DNS:localhost"
  sign admin "/O=system:masters/CN=admin"
  sign kcm "/CN=system:kube-controller-manager"
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() { # out cert key
  local out=$1 cert=$2 key=$3 dir=$4
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$((PORT_BASE + 0))
    certificate-authority-data: $(base64 -w0 "$dir/pki/ca.crt")
users:
- name: user
  user:
    client-certificate-data: $(base64 -w0 "$cert")
    client-key-data: $(base64 -w0 "$key")
contexts:
- name: test
  context: {cluster: test, user: user}
current-context: test
EOF
}

start() {
  local dir=${1:?usage: kube.sh start DIR}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -x "$BIN/kube-apiserver" ] || (build)
  command -v etcd >/dev/null || die "etcd is missing: run scripts/kube.sh build"
  [ -e "$dir/pids" ] && die "$dir/pids exists: a control plane may be running there (scripts/kube.sh stop $dir)"
  local api=$((PORT_BASE + 0)) etcd_c=$((PORT_BASE + 1)) etcd_p=$((PORT_BASE + 2)) kcm=$((PORT_BASE + 3))
  certs "$dir"
  kubeconfig "$dir/kubeconfig" "$dir/pki/admin.crt" "$dir/pki/admin.key" "$dir"
  kubeconfig "$dir/kcm.kubeconfig" "$dir/pki/kcm.crt" "$dir/pki/kcm.key" "$dir"
  : >"$dir/pids"
  netns_create "$dir"
  nsd etcd --name mooseherd-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_c" --advertise-client-urls "http://127.0.0.1:$etcd_c" \
    --listen-peer-urls "http://127.0.0.1:$etcd_p" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_p" \
    --initial-cluster "mooseherd-test=http://127.0.0.1:$etcd_p" \
    >"$dir/etcd.log" 2>&1 &
  echo $! >>"$dir/pids"
  local p=$dir/pki
  nsd "$BIN/kube-apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api" \
    --insecure-port=0 --etcd-servers="http://127.0.0.1:$etcd_c" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=Node,RBAC --endpoint-reconciler-type=none \
    >"$dir/apiserver.log" 2>&1 &
  echo $! >>"$dir/pids"
  local i
  for i in $(seq 1 120); do
    ns curl -sf --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" "https://127.0.0.1:$api/readyz" >/dev/null 2>&1 && break
    sleep 0.5
    [ "$i" = 120 ] && { tail -20 "$dir/apiserver.log" >&2; die "kube-apiserver not ready after 60 s (log: $dir/apiserver.log)"; }
  done
  nsd "$BIN/kube-controller-manager" --kubeconfig="$dir/kcm.kubeconfig" \
    --authentication-kubeconfig="$dir/kcm.kubeconfig" --authorization-kubeconfig="$dir/kcm.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm" --port=0 --leader-elect=false \
    --use-service-account-credentials=true --service-account-private-key-file="$p/sa.key" \
    --root-ca-file="$p/ca.crt" --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --kube-api-qps="${KUBE_KCM_QPS:-20}" --kube-api-burst="$((2 * ${KUBE_KCM_QPS:-20}))" \
    --controllers=persistentvolume-binder,persistentvolume-expander,pvc-protection,pv-protection,serviceaccount-token,serviceaccount,namespace,garbagecollector \
    >"$dir/kcm.log" 2>&1 &
  echo $! >>"$dir/pids"
  mfs_start "$dir"
  printf 'KUBECONFIG=%s\nMOOSEHERD_TEST_MFS=%s\nMOOSEHERD_TEST_NETNS=%s\nMOOSEFS_BIN=%s\n' "$dir/kubeconfig" "$dir/mfs" "/run/netns/$(netns_name)" "$MOOSEFS_BIN" >"$dir/env"
  log "ready: KUBECONFIG=$dir/kubeconfig MOOSEHERD_TEST_MFS=$dir/mfs (logs in $dir)"
}

# Everything runs in a network namespace of its own (mhkube-PORT_BASE): the chunkserver refuses a
# master on any 127.x address ("use ip address of network controller"), so MooseFS needs a real
# address, 10.215.0.1 on a veth inside it. The mount is made from inside the namespace
# (nsenter keeps the host's mount namespace: the host sees it). Tests and tools that talk to the
# apiserver (127.0.0.1 there) or the master run inside it too: `nsenter --net=$MOOSEHERD_TEST_NETNS`.
NS_ADDR=10.215.0.1
netns_name() { printf 'mhkube-%s' "$PORT_BASE"; }
netns_create() {
  local n
  n=$(netns_name)
  [ -e "/run/netns/$n" ] && die "network namespace $n exists: another control plane uses KUBE_PORT_BASE=$PORT_BASE (stop it, or pick another base)"
  ip netns add "$n"
  echo "$n" >"$1/netns"
  ip -n "$n" link set lo up
  # A veth pair with both ends inside (no dummy module on every kernel).
  ip -n "$n" link add mh0 type veth peer name mh1
  ip -n "$n" addr add "$NS_ADDR/24" dev mh0
  ip -n "$n" link set mh0 up
  ip -n "$n" link set mh1 up
}
# In the namespace. Used before `&`, `exec` makes the recorded $! the daemon's own PID (nsenter
# execs it too), so `stop` signals the daemon itself.
ns() { nsenter --net="/run/netns/$(netns_name)" "$@"; }
nsd() { exec nsenter --net="/run/netns/$(netns_name)" "$@"; }

# A single-node MooseFS in the namespace (ports PORT_BASE+4..7), mounted at DIR/mfs.
mfs_start() {
  local dir=$1 m=$1/mfsm c=$1/mfscs
  local ml=$((PORT_BASE + 4)) cs=$((PORT_BASE + 5)) cl=$((PORT_BASE + 6)) csl=$((PORT_BASE + 7))
  MOOSEFS_BIN=""
  case "${KUBE_MOOSEFS:-3}" in
    3) ;;
    4) MOOSEFS_BIN=$(bash "$(dirname "$0")/moosefs.sh" path) || die "KUBE_MOOSEFS=4: MooseFS 4 is not built (scripts/moosefs.sh build)"
       PATH="$MOOSEFS_BIN:$PATH" ;;
    *) die "KUBE_MOOSEFS=${KUBE_MOOSEFS}: give 3 or 4" ;;
  esac
  command -v mfsmaster >/dev/null || die "mfsmaster is missing (apt install moosefs-master moosefs-chunkserver moosefs-client; scripts/setup.sh does)"
  log "MooseFS: $(mfsmaster -v 2>&1 | head -1)"
  mkdir -p "$m/data" "$c/data" "$c/chunks" "$dir/mfs"
  cp /var/lib/mfs/metadata.mfs.empty "$m/data/metadata.mfs" 2>/dev/null || printf 'MFSM NEW' >"$m/data/metadata.mfs"
  printf '* / rw,alldirs,admin,maproot=0:0\n' >"$m/exports.cfg"
  printf '%s\n' "WORKING_USER = root" "WORKING_GROUP = root" "DATA_PATH = $m/data" \
    "EXPORTS_FILENAME = $m/exports.cfg" \
    "MATOML_LISTEN_HOST = $NS_ADDR" "MATOML_LISTEN_PORT = $ml" \
    "MATOCS_LISTEN_HOST = $NS_ADDR" "MATOCS_LISTEN_PORT = $cs" \
    "MATOCL_LISTEN_HOST = $NS_ADDR" "MATOCL_LISTEN_PORT = $cl" >"$m/mfsmaster.cfg"
  printf '%s\n' "$c/chunks" >"$c/hdd.cfg"
  printf '%s\n' "WORKING_USER = root" "WORKING_GROUP = root" "DATA_PATH = $c/data" \
    "HDD_CONF_FILENAME = $c/hdd.cfg" "MASTER_HOST = $NS_ADDR" "MASTER_PORT = $cs" \
    "CSSERV_LISTEN_HOST = $NS_ADDR" "CSSERV_LISTEN_PORT = $csl" \
    "HDD_LEAVE_SPACE_DEFAULT = 0" >"$c/mfschunkserver.cfg"
  nsd mfsmaster -f -c "$m/mfsmaster.cfg" >"$dir/mfsmaster.log" 2>&1 &
  echo $! >>"$dir/pids"
  local i
  for i in $(seq 1 100); do
    ns bash -c "exec 3<>/dev/tcp/$NS_ADDR/$cl" 2>/dev/null && break
    sleep 0.1
    [ "$i" = 100 ] && { tail -20 "$dir/mfsmaster.log" >&2; die "mfsmaster did not listen on $NS_ADDR:$cl"; }
  done
  nsd mfschunkserver -f -c "$c/mfschunkserver.cfg" >"$dir/mfschunkserver.log" 2>&1 &
  echo $! >>"$dir/pids"
  nsd mfsmount "$dir/mfs" -f -H "$NS_ADDR" -P "$cl" >"$dir/mfsmount.log" 2>&1 &
  echo $! >>"$dir/pids"
  for i in $(seq 1 100); do
    [ "$(stat -f -c %t "$dir/mfs" 2>/dev/null)" = 65735546 ] && break
    sleep 0.1
    [ "$i" = 100 ] && { tail -20 "$dir/mfsmount.log" >&2; die "mfsmount did not mount $dir/mfs"; }
  done
  return 0
}


stop() {
  local dir=${1:?usage: kube.sh stop DIR}
  [ -d "$dir" ] || return 0
  if mountpoint -q "$dir/mfs" 2>/dev/null; then
    umount "$dir/mfs" 2>/dev/null || umount -l "$dir/mfs" 2>/dev/null || true
  fi
  if [ -f "$dir/pids" ]; then
    local pid
    # Reverse order: controller-manager, apiserver, etcd.
    for pid in $(tac "$dir/pids"); do kill "$pid" 2>/dev/null || true; done
    for pid in $(tac "$dir/pids"); do
      local i
      for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done
  fi
  if [ -f "$dir/netns" ]; then
    ip netns del "$(cat "$dir/netns")" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  build) build ;;
  start) start "${2:-}" ;;
  mfs-start)
    # Only the MooseFS part (for tests of the mfs tools without Kubernetes).
    d=${2:?usage: kube.sh mfs-start DIR}; mkdir -p "$d"; d=$(cd "$d" && pwd)
    [ -e "$d/pids" ] && die "$d/pids exists (scripts/kube.sh stop $d)"
    : >"$d/pids"; netns_create "$d"; mfs_start "$d"
    printf 'MOOSEHERD_TEST_MFS=%s\nMOOSEHERD_TEST_NETNS=%s\nMOOSEFS_BIN=%s\n' "$d/mfs" "/run/netns/$(netns_name)" "$MOOSEFS_BIN" >"$d/env"; cat "$d/env" ;;
  stop) stop "${2:-}" ;;
  *) sed -n "2,20p" "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
