#!/usr/bin/env bash
# Installs what matchstream needs on Debian, idempotently: the system packages (mariadb-server),
# the virtual environment .venv and the pinned Python dependencies of requirements.lock.
# Sourced by setup.sh and scripts/test.sh, so both work on a fresh clone of a fresh machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MATCHSTREAM_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else die "need root or sudo to run: $*"; fi
}

have_mariadbd() {
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]
}

apt_updated=""
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* with your system's package manager"
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    as_root apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

bootstrap_system() {
  if ! have_mariadbd; then
    apt_install mariadb-server mariadb-client
  fi
  # Debian's mariadb-server package starts a system service on port 3306; matchstream runs its
  # own private instance and leaves that one alone.
  command -v "$PY" >/dev/null 2>&1 || apt_install python3 python3-venv
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
}

# pip warns once per package about index folders some machines' pip.conf names but that do not
# exist; that is noise, everything else pip says is kept.
quiet_pip() { grep -v "^WARNING: Location 'file://.*' is ignored" || true; }

bootstrap_venv() {
  local stamp="$VENV/.matchstream-lock.sha256" want
  want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  # `python3 -m venv` run before python3-venv was installed leaves a venv without pip: redo it.
  if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    say "recreating $VENV (it has no pip)"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PY" -m venv "$VENV" || die "could not create the virtual environment $VENV"
  fi
  say "installing pinned dependencies (requirements.lock) into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.lock" \
    2>&1 | quiet_pip || die "pip install -r requirements.lock failed"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT" \
    2>&1 | quiet_pip || die "pip install -e . failed"
  echo "$want" > "$stamp"
}

# What only the test suite needs: a real headless browser for the dashboard's page tests, and the
# Kafka clients users bring (kcat; Node.js for a non-Python client). setup.sh does not need them.
bootstrap_test_tools() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v kcat >/dev/null 2>&1 || missing+=(kcat)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

bootstrap() {
  bootstrap_system
  bootstrap_venv
  # Like `source .venv/bin/activate`: transforms (#!/usr/bin/env python3) started by the engine
  # or by tests must find the venv's interpreter and packages.
  export PATH="$VENV/bin:$PATH"
}
