# Shell helpers shared by scripts/kube.sh and scripts/moosefs.sh (sourced, never run).

# apt-get install, quiet, waiting for the dpkg lock. A clean-up hook on some images removes .debs
# mid-run ("cannot access archive"): retry once.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "$@" >/dev/null \
    || { sleep 5; apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=900 "$@" >/dev/null; }
}

# True when every package named is installed.
have_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
}
