#!/usr/bin/env bash
# MooseFS 4.x built from source beside the host's MooseFS 3.0 (Debian 12's packages), which it
# never touches: nothing is installed under /usr, and the host's apt sources are left alone.
#
#   scripts/moosefs.sh build [VERSION]   fetch Debian's `moosefs` source package and build it into
#                                        the cache (once; a second run says "cached" and returns)
#   scripts/moosefs.sh path [VERSION]    print BIN:SBIN of a built version (default: `current`),
#                                        e.g. PATH="$(scripts/moosefs.sh path):$PATH"; exits 1
#                                        when that version is not built
#
# VERSION is an upstream version (4.57.5) or a Debian one (4.57.5-1). Without one, `build` takes
# the first suite of $MOOSEHERD_MOOSEFS_SUITES (default "trixie trixie-backports sid") whose
# source can be downloaded: trixie has 4.57.5, trixie-backports 4.58.1, sid 4.59.2 (when this
# was written). A mirror that serves the upstream tarball but not Debian's .dsc/.debian.tar.xz
# still builds: the tarball alone (`apt-get source --tar-only`), without Debian's patches;
# BUILD-INFO in the install says which. MOOSEHERD_MOOSEFS_SOURCE=FILE.tar.*|DIR builds from a
# local upstream tarball or source tree instead (VERSION defaults to its configure.ac's).
#
# Source packages come through an apt configuration of this script's own (a sources file, lists
# and package cache under $CACHE/apt, passed with -o Dir::...): `deb-src MIRROR SUITE main`,
# with MIRROR the host's Debian mirror ($MOOSEHERD_MOOSEFS_MIRROR overrides it). Build
# dependencies are Debian 12 packages installed with the host's apt: build-essential, pkgconf,
# libfuse3-dev, libpcap0.8-dev, zlib1g-dev, python3 (Debian's Build-Depends less debhelper and
# dh-python, which a plain ./configure && make does not use).
#
# Cache: $MOOSEHERD_MOOSEFS_CACHE (default /var/cache/mooseherd-moosefs)/<upstream version>/ holds
# bin/ (mfsmount, mfscli and the client tools: mfssetsclass, mfsscadmin, mfssetquota,
# mfsmakesnapshot, ... many are symlinks to a few multi-call binaries), sbin/ (mfsmaster,
# mfschunkserver, mfsmetalogger, ...), lib/ (libmfsio), share/man, etc/mfs/*.sample and
# BUILD-INFO; `current` links to the last version built. Compiled-in defaults point inside that
# directory, never at the host's 3.0 files: config $CACHE/<v>/etc/mfs, data $CACHE/<v>/var/mfs
# (3.0: /etc/mfs and /var/lib/mfs), default user/group mfs like Debian's. Pass -c CONFIG.
#
# Needs root (apt-get) and Debian 12. From an empty cache the build takes ~1.5-3 min on 2 cores
# (configure ~30 s, make -j2 ~1 min), plus the download.
set -euo pipefail

CACHE_ROOT="${MOOSEHERD_MOOSEFS_CACHE:-/var/cache/mooseherd-moosefs}"
SUITES="${MOOSEHERD_MOOSEFS_SUITES:-trixie trixie-backports sid}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf 'moosefs.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=scripts/apt-lib.sh
. "$(dirname "$0")/apt-lib.sh"

# 4.57.5-1 -> 4.57.5 (a Debian revision and an epoch dropped).
upstream_of() { local v=${1#*:}; printf '%s\n' "${v%-*}"; }

# A complete install (make install succeeded and the directory was moved into place).
built() { [ -x "$CACHE_ROOT/$1/sbin/mfsmaster" ] && [ -x "$CACHE_ROOT/$1/bin/mfsmount" ]; }

# The version `current` names, if any.
current_version() {
  local v
  v=$(readlink "$CACHE_ROOT/current" 2>/dev/null) || return 1
  built "$v" || return 1
  printf '%s\n' "$v"
}

# The host's Debian mirror (the first deb.debian.org-like URI of a `debian` archive in its apt
# sources, one-line or deb822), read only; http://deb.debian.org/debian when none is found.
host_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*//p' -e 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]\+\).*/\2/p' \
    | tr ' ' '\n' | grep -E '^https?://[^ ]+/debian/?$' | head -1 || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# apt-get / apt-cache with this script's own sources, lists and package cache: the host's apt
# state is neither read for sources nor written.
APT_DIR="$CACHE_ROOT/apt"
APT_OPTS=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=/dev/null
  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache" -o APT::Sandbox::User=root)
private_apt() { apt-get "${APT_OPTS[@]}" "$@"; }

private_apt_update() {
  local mirror suite
  mirror="${MOOSEHERD_MOOSEFS_MIRROR:-$(host_mirror)}"
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  {
    echo "# Written by mooseherd scripts/moosefs.sh: MooseFS source packages, for this script only."
    for suite in $SUITES; do
      echo "deb-src [signed-by=$KEYRING] $mirror $suite main"
    done
  } >"$APT_DIR/sources.list"
  log "apt-get update ($SUITES from $mirror; private lists in $APT_DIR)"
  private_apt update -qq >/dev/null 2>"$APT_DIR/update.err" \
    || { sleep 5; private_apt update -qq >/dev/null 2>"$APT_DIR/update.err"; } \
    || { cat "$APT_DIR/update.err" >&2; die "apt-get update of $APT_DIR/sources.list failed"; }
}

# Debian versions of the moosefs source package the private lists know, newest first.
known_versions() {
  apt-cache "${APT_OPTS[@]}" showsrc moosefs 2>/dev/null | awk '/^Version:/ {print $2}' | sort -urV
}

# Downloads one source into the current directory: `apt-get source` (Debian's tree, patches
# applied), else `--tar-only` (the upstream tarball). Prints "debian" or "tar-only".
fetch_source() {
  local spec=$1
  if private_apt source -qq "$spec" >fetch.log 2>&1; then
    echo debian
    return 0
  fi
  rm -rf -- ./moosefs* 2>/dev/null || true
  if private_apt source -qq --tar-only "$spec" >>fetch.log 2>&1; then
    echo tar-only
    return 0
  fi
  return 1
}

build() {
  [ "$(id -u)" = 0 ] || die "the build needs root (apt-get)"
  local want=${1:-}
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.lock"
  flock 9

  # Already built: nothing to do (no network either).
  local cached=""
  if [ -n "${MOOSEHERD_MOOSEFS_SOURCE:-}" ] && [ -z "$want" ]; then
    cached=""
  elif [ -z "$want" ]; then
    cached=$(current_version || true)
  elif built "$(upstream_of "$want")"; then
    cached=$(upstream_of "$want")
  fi
  if [ -n "$cached" ]; then
    ln -sfn "$cached" "$CACHE_ROOT/current"
    log "cached: $CACHE_ROOT/$cached (PATH=\$($0 path):\$PATH)"
    return 0
  fi

  local t0=$SECONDS
  local deps=(build-essential pkgconf libfuse3-dev libpcap0.8-dev zlib1g-dev python3 dpkg-dev xz-utils)
  if ! have_pkgs "${deps[@]}"; then
    log "installing build dependencies from Debian 12: ${deps[*]}"
    apt-get update -qq
    apt_install "${deps[@]}"
  fi

  # The build tree (~60 MB) is removed at exit, success or not; the install keeps BUILD-INFO.
  WORK="$CACHE_ROOT/build.$$"
  local work=$WORK
  rm -rf "$work"
  mkdir -p "$work"
  trap 'rm -rf "$WORK"' EXIT
  cd "$work"

  local origin="" version="" src=""
  if [ -n "${MOOSEHERD_MOOSEFS_SOURCE:-}" ]; then
    local s=$MOOSEHERD_MOOSEFS_SOURCE
    if [ -d "$s" ]; then
      cp -a "$s" "$work/src"
    elif [ -f "$s" ]; then
      mkdir "$work/src"
      tar -xf "$s" -C "$work/src" --strip-components=1
    else
      die "MOOSEHERD_MOOSEFS_SOURCE=$s is neither a directory nor a tarball"
    fi
    src="$work/src"
    [ -x "$src/configure" ] || die "$s has no configure script (an upstream release tarball or tag has one)"
    version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$src/configure.ac" | head -1)
    [ -n "$want" ] && [ "$(upstream_of "$want")" != "$version" ] \
      && die "$s is MooseFS $version, not $(upstream_of "$want")"
    [ -n "$version" ] || die "cannot read the version from $s/configure.ac"
    origin="local source $s"
    if [ -f "$s" ]; then
      # Say whether it is byte for byte the upstream tarball of a Debian source package (the
      # signed Sources index lists its sha256), when this script's lists are there already.
      local sum
      sum=$(sha256sum "$s" | cut -d' ' -f1)
      if [ -d "$APT_DIR/lists" ] \
        && apt-cache "${APT_OPTS[@]}" showsrc moosefs 2>/dev/null | grep -c "^ $sum " >/dev/null; then
        origin="$origin (sha256 $sum: identical to moosefs_$version.orig tarball in Debian's Sources index)"
      else
        origin="$origin (sha256 $sum)"
      fi
    fi
  else
    private_apt_update
    local candidates=() v suite
    if [ -z "$want" ]; then
      for suite in $SUITES; do candidates+=("moosefs/$suite"); done
    elif [[ $want == *-* ]]; then
      candidates=("moosefs=$want")
    else
      for v in $(known_versions); do
        [ "$(upstream_of "$v")" = "$want" ] && candidates+=("moosefs=$v")
      done
      [ ${#candidates[@]} -gt 0 ] || die "no moosefs $want source in $SUITES (known: $(known_versions | paste -sd' '))"
    fi
    local c kind="" failed=()
    for c in "${candidates[@]}"; do
      if kind=$(fetch_source "$c"); then
        break
      fi
      failed+=("$c")
      kind=""
      log "$c: the mirror did not serve it ($(grep -m1 -o '[0-9]\{3\} \+[A-Z][A-Za-z ]*[a-z]' fetch.log | tr -s ' ' || echo 'see below'))"
    done
    if [ -z "$kind" ]; then
      sed 's/^/  /' fetch.log >&2
      die "no moosefs source could be downloaded (tried: ${failed[*]}); known versions: $(known_versions | paste -sd' '). MOOSEHERD_MOOSEFS_SOURCE=FILE.tar.xz builds from a local upstream tarball"
    fi
    if [ "$kind" = debian ]; then
      src=$(find . -maxdepth 1 -type d -name 'moosefs-*' | head -1)
      version=$(sed -n 's/^Version: //p' ./*.dsc | head -1)
      origin="Debian source package moosefs $version ($c, Debian's patches applied)"
      version=$(upstream_of "$version")
    else
      local tarball
      tarball=$(find . -maxdepth 1 -name 'moosefs_*.orig.tar.*' | head -1)
      [ -n "$tarball" ] || die "apt-get source --tar-only produced no moosefs_*.orig.tar.*"
      version=${tarball#./moosefs_}
      version=${version%.orig.tar.*}
      mkdir src
      tar -xf "$tarball" -C src --strip-components=1
      src=src
      origin="upstream tarball $(basename "$tarball") of Debian's source package ($c; the mirror served no .dsc/.debian.tar.xz, so Debian's patches are NOT applied)"
    fi
    [ ${#failed[@]} -gt 0 ] && log "not downloadable: ${failed[*]}"
    src=$(cd "$src" && pwd)
  fi

  if built "$version"; then
    ln -sfn "$version" "$CACHE_ROOT/current"
    log "cached: $CACHE_ROOT/$version"
    return 0
  fi
  local prefix="$CACHE_ROOT/$version"
  log "building MooseFS $version from $origin"
  cd "$src"
  local conf=(--prefix="$prefix" --sysconfdir="$prefix/etc" --localstatedir="$prefix/var"
    --with-default-user=mfs --with-default-group=mfs --with-systemdsystemunitdir=no
    --disable-static)
  nice -n 19 ./configure "${conf[@]}" >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; die "configure failed"; }
  nice -n 19 make -j"$(nproc)" >>"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; die "make failed"; }
  # Installed beside the final place, then moved there: a half-done install is never "cached".
  make install DESTDIR="$work/stage" >>"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; die "make install failed"; }
  local staged="$work/stage$prefix"
  [ -x "$staged/sbin/mfsmaster" ] && [ -x "$staged/bin/mfsmount" ] \
    || die "make install put no sbin/mfsmaster or bin/mfsmount under $staged"
  mkdir -p "$staged/var/mfs"
  {
    echo "MooseFS $version"
    echo "source: $origin"
    echo "configure: ${conf[*]}"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME") in $((SECONDS - t0)) s"
    echo "mfsmaster -v: $("$staged/sbin/mfsmaster" -v 2>&1 | head -1)"
  } >"$staged/BUILD-INFO"
  rm -rf "$prefix"
  mv "$staged" "$prefix"
  ln -sfn "$version" "$CACHE_ROOT/current"
  cd /
  log "built MooseFS $version in $((SECONDS - t0)) s: $prefix (PATH=\$($0 path):\$PATH)"
}

path() {
  local v=${1:-}
  if [ -z "$v" ]; then
    v=$(current_version) || die "MooseFS 4 is not built ($CACHE_ROOT/current missing): run scripts/moosefs.sh build"
  else
    v=$(upstream_of "$v")
    built "$v" || die "MooseFS $v is not built in $CACHE_ROOT: run scripts/moosefs.sh build $v"
  fi
  printf '%s/bin:%s/sbin\n' "$CACHE_ROOT/$v" "$CACHE_ROOT/$v"
}

case "${1:-}" in
  build) build "${2:-}" ;;
  path) path "${2:-}" ;;
  *) sed -n "2,35p" "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
