#!/usr/bin/env bash
# Idempotent project setup.
#
#   scripts/setup.sh app    runtime only: .venv + requirements.txt (no system packages)
#   scripts/setup.sh test   everything: Debian packages (postgresql, pgbouncer, chromium,
#                           chromium-driver, fonts-liberation) + .venv + requirements-dev.txt
#                           (default)
#
# A second run is fast: apt is skipped when every package is installed, pip is skipped
# when .venv/.req-stamp matches the sha256 of the requirements files.
set -euo pipefail

MODE="${1:-test}"
case "$MODE" in
  app | test) ;;
  *)
    echo "usage: $0 [app|test]" >&2
    exit 2
    ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.req-stamp"
APT_PACKAGES=(postgresql pgbouncer chromium chromium-driver fonts-liberation)

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "need root (or passwordless sudo) to run: $*"
    return 1
  fi
}

# --------------------------------------------------------------------------- apt
retry() {
  local n
  for n in 1 2 3; do
    "$@" && return 0
    log "attempt $n failed: $*"
    sleep $((n * 5))
  done
  return 1
}

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_system_packages() {
  local missing=()
  local p
  for p in "${APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    retry as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
    retry as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
  else
    log "Debian packages already installed"
  fi

  # The tests start their own throwaway PostgreSQL/PgBouncer as the `postgres` OS user.
  if ! id -u postgres >/dev/null 2>&1; then
    log "creating OS user postgres"
    as_root useradd --system --user-group --home-dir /var/lib/postgresql \
      --shell /bin/bash postgres
  fi

  stop_system_services
}

stop_system_services() {
  # Debian creates (and on real systems starts) a cluster on 5432 and pgbouncer on 6432.
  # Never leave them running: tests use their own servers on free ports.
  local running=0
  if command -v pg_lsclusters >/dev/null 2>&1; then
    local ver name port status rest
    while read -r ver name port status rest; do
      [ -n "${ver:-}" ] || continue
      if [ "$status" = "online" ] || [[ "$status" == online* ]]; then
        running=1
        log "stopping Debian PostgreSQL cluster $ver/$name (port $port)"
        as_root pg_ctlcluster --force "$ver" "$name" stop </dev/null >/dev/null 2>&1 || true
      fi
    done < <(pg_lsclusters --no-header 2>/dev/null || true)
  fi
  # Only the system instance uses /var/run/postgresql/pgbouncer.pid; test instances keep
  # their pidfiles in their own temp dirs, so this never touches them.
  local pidfile=/var/run/postgresql/pgbouncer.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
    running=1
    log "stopping Debian pgbouncer service"
    as_root service pgbouncer stop </dev/null >/dev/null 2>&1 || true
  fi
  if [ "$running" -eq 0 ]; then
    log "no Debian postgresql/pgbouncer service running"
  fi
}

# ------------------------------------------------------------------------ venv
sha_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating $VENV with $("$PYTHON" -V 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
}

install_python_packages() {
  local pyver app_hash test_hash want current=""
  pyver="$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
  app_hash="$(sha_of requirements.txt)"
  test_hash="$(sha_of requirements.txt requirements-dev.txt)"
  [ -f "$STAMP" ] && current="$(cat "$STAMP")"

  if [ "$MODE" = "app" ]; then
    want="app py$pyver $app_hash"
    # A full test install is a superset of the app install.
    if [ "$current" = "$want" ] || [ "$current" = "test py$pyver $test_hash" ]; then
      log "python packages up to date (stamp matches)"
      return
    fi
    req=requirements.txt
  else
    want="test py$pyver $test_hash"
    if [ "$current" = "$want" ]; then
      log "python packages up to date (stamp matches)"
      return
    fi
    req=requirements-dev.txt
  fi

  log "pip install -r $req"
  rm -f "$STAMP"
  PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$VENV/bin/python" -m pip install -q -r "$req" </dev/null
  printf '%s\n' "$want" >"$STAMP"
}

start=$SECONDS
if [ "$MODE" = "test" ]; then
  install_system_packages
fi
ensure_venv
install_python_packages
log "setup ($MODE) done in $((SECONDS - start)) s"
