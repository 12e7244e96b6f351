#!/usr/bin/env bash
# Installs what `make bench` needs beyond `scripts/setup.sh up`: nginx and wrk (the reference proxy
# and the load generator), and the Java and Go toolchains so those templates are benchmarked too.
# As root it installs with apt-get; otherwise it prints the one command to run and stops. A
# toolchain that cannot be installed only drops its template from the run (the run says so).
set -euo pipefail

missing=()
need() { # need PACKAGE TEST-COMMAND...
  local package="$1"; shift
  if ! "$@" >/dev/null 2>&1; then missing+=("$package"); fi
}
need nginx test -x /usr/sbin/nginx
need wrk command -v wrk
need default-jdk-headless command -v javac
need golang-go command -v go

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bench setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bench setup: missing packages. Run:"
    echo "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi
echo "bench setup: ready"
