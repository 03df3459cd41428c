#!/usr/bin/env bash
# The test command of this repository (README "Test it", docs/testing.md; CI runs it after fmt
# and clippy).
#
# 1. Checks what the tests need: cargo; Node 20+ with npm; python3 able to create a virtualenv
#    (the conformance suite makes its own); redis-server (the cluster tests start their own on
#    free ports); Debian's chromium at /usr/bin/chromium (the browser test).
# 2. Installs what is missing when it can: as root with apt-get, the Debian packages
#    redis-server, chromium, python3-venv (python3 too if there is none), with one
#    `apt-get update` and only when something must be installed. Services are not started.
#    Otherwise it prints what is missing and how to install it, and exits 1: nothing is skipped.
# 3. Runs `cargo test`, then a bounded schemathesis pass over the HTTP API (fuzz/api/run.sh,
#    which makes its own virtualenv from PyPI), then the recovery plugin's tests
#    (`clients/echo-recovery`: npm ci, npm test), then `(cd protocol-tests && npm ci && npm test)`
#    (the suite runs against one node, then against a two-node cluster on each kind of Redis:
#    one server, TLS with an ACL user, a Redis Cluster, Sentinel).
#
# Works from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHROMIUM=/usr/bin/chromium # the path protocol-tests/tests/browser.test.mjs launches
NODE_MAJOR=20

scratch=$(mktemp -d)
own_policy_rc_d=""
cleanup() {
  rm -rf "$scratch"
  if [ -n "$own_policy_rc_d" ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

# Whether python3 can make the virtualenv the suite and the API fuzzer need (with pip, as
# run.mjs and fuzz/api/run.sh do).
python_venv_works() {
  command -v python3 >/dev/null 2>&1 &&
    python3 -m venv --help >/dev/null 2>&1 &&
    rm -rf "$scratch/venv" &&
    python3 -m venv "$scratch/venv" >/dev/null 2>&1
}

node_is_recent() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || return 1
  [ "$major" -ge "$NODE_MAJOR" ]
}

# Fills `packages` (Debian packages that would fix what is missing) and `problems` (what no
# package of ours fixes, each with how to fix it).
check() {
  packages=()
  problems=()
  command -v cargo >/dev/null 2>&1 ||
    problems+=("cargo: not found; install Rust with https://rustup.rs")
  if ! command -v node >/dev/null 2>&1; then
    problems+=("node: not found; install Node $NODE_MAJOR or newer with npm (https://nodejs.org, or NodeSource's nodejs package)")
  elif ! node_is_recent; then
    problems+=("node: $(node --version) is too old; install Node $NODE_MAJOR or newer (https://nodejs.org)")
  fi
  command -v npm >/dev/null 2>&1 ||
    problems+=("npm: not found; it comes with Node from nodejs.org or NodeSource (Debian: apt-get install npm)")
  if ! command -v python3 >/dev/null 2>&1; then
    packages+=(python3 python3-venv)
  elif ! python_venv_works; then
    packages+=(python3-venv)
  fi
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  # Certificates for the TLS tests (the main port and TLS Redis) are made with openssl.
  command -v openssl >/dev/null 2>&1 || packages+=(openssl)
  # The packaging checks (packaging/test.sh) read binaries with file and build a .deb.
  command -v file >/dev/null 2>&1 || packages+=(file)
  command -v dpkg-deb >/dev/null 2>&1 || packages+=(dpkg)
  [ -x "$CHROMIUM" ] || packages+=(chromium)
}

echo "== prerequisites"
check
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing with apt-get: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Installing redis-server must not start the system's Redis: the tests start their own.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      own_policy_rc_d=1
    fi
    apt-get update -qq
    apt-get install -y -qq "${packages[@]}" >/dev/null
    if [ -n "$own_policy_rc_d" ]; then
      rm -f /usr/sbin/policy-rc.d
      own_policy_rc_d=""
    fi
    check
    if [ ${#packages[@]} -gt 0 ]; then
      # Installed, yet still missing: python3-venv does not help a python3 that is not
      # Debian's (pyenv, a venv first in PATH, ...).
      problems+=("still missing after apt-get install: ${packages[*]}")
      if [[ " ${packages[*]} " == *" python3-venv "* ]]; then
        problems+=("python3 ($(command -v python3)) cannot create a virtualenv: give it venv and ensurepip support, or put Debian's /usr/bin/python3 first in PATH")
      fi
    fi
  else
    why="not root"
    command -v apt-get >/dev/null 2>&1 || why="no apt-get"
    for p in "${packages[@]}"; do
      case "$p" in
      python3) problems+=("python3: not found; install it (Debian: apt-get install python3 python3-venv)") ;;
      python3-venv)
        if command -v python3 >/dev/null 2>&1; then
          problems+=("python3 ($(command -v python3)) cannot create a virtualenv: install its venv support (Debian: apt-get install python3-venv)")
        fi
        ;;
      redis-server) problems+=("redis-server: not found; install it (Debian: apt-get install redis-server; the tests start their own, the service need not run)") ;;
      chromium) problems+=("$CHROMIUM: not found; install Debian's chromium package (apt-get install chromium)") ;;
      esac
    done
    problems+=("(not installed automatically: $why; run this script as root on Debian, or install the above yourself)")
  fi
fi
if [ ${#problems[@]} -gt 0 ]; then
  echo "scripts/test.sh: cannot run the tests; missing:" >&2
  for p in "${problems[@]}"; do echo "  - $p" >&2; done
  exit 1
fi
echo "cargo:        $(cargo --version)"
echo "node:         $(node --version), npm $(npm --version)"
echo "python3:      $(python3 --version 2>&1) ($(command -v python3)), venv ok"
echo "redis-server: $(redis-server --version)"
echo "chromium:     $(timeout 20 "$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"

# The app store tests use the machine's PostgreSQL (127.0.0.1:5432, trust) and MariaDB
# (127.0.0.1:3306, root without a password), each test in a database of its own. Start them
# when they are installed but not running.
echo "== databases for the app store tests"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
fi
if ! mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && [ -x /usr/sbin/mariadbd ]; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 1 50); do mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "scripts/test.sh: PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
mariadb-admin -h 127.0.0.1 -u root ping || { echo "scripts/test.sh: MariaDB is not answering on 127.0.0.1:3306" >&2; exit 1; }

echo "== cargo test"
cargo test

echo "== fuzz/api: schemathesis against the HTTP API (bounded, deterministic; docs/testing.md)"
fuzz/api/run.sh 100 --deterministic

echo "== clients/echo-recovery: npm ci, npm test (the recovery plugin with pusher-js and Echo)"
(cd clients/echo-recovery && npm ci --silent && npm test)

echo "== protocol-tests: npm ci"
(cd protocol-tests && npm ci)

echo "== protocol-tests: npm test (single node, then two-node clusters on plain, TLS, Cluster and Sentinel Redis)"
(cd protocol-tests && npm test)

echo "== packaging: the static binary in an empty root, clarion probe, the .deb and its unit"
packaging/test.sh

echo "== all tests passed"
