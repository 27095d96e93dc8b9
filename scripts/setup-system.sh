#!/usr/bin/env bash
# Installs the system programs the scripts and the test suite need, from Debian's
# packages: python3-venv (Debian's own python3 makes no virtual environment without
# it, and chat.sh and test.sh make .venv), python3-dev and gcc (the C extension),
# Node.js + npm (the real sockjs-client), Chromium (the real-browser tests, driven by
# playwright-core; nothing downloads a browser build), redis-server + haproxy
# (the multi-worker deployment tests) and nginx (the proxy tests, run as the
# test's own process on a port of its own; the package's service is not needed), and
# libssl-dev (bench/load's C load generator links OpenSSL). Idempotent and quiet; needs root
# or sudo only when something is missing.
set -euo pipefail
need=()
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
  inc=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("include"))' 2>/dev/null || true)
  [ -f "$inc/Python.h" ] || need+=(python3-dev)
fi
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# OpenSSL's headers: bench/load's C load generator links libssl (its TLS scenarios)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup-system: need root (or sudo) to install: ${need[*]}" >&2; exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: no apt-get; install these yourself: ${need[*]}" >&2
  exit 1
fi
echo "setup-system: installing ${need[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq &&
       $SUDO env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-system: apt-get failed installing: ${need[*]}" >&2
  exit 1
fi
