#!/usr/bin/env bash
# Installs the system programs the test suite talks to, from Debian's packages:
# Node.js + npm (the real sockjs-client), Chromium (the real-browser tests,
# driven by playwright-core; nothing downloads a browser build), and redis-server
# + haproxy (the multi-worker deployment tests). Idempotent and quiet; needs root
# or sudo only when something is missing.
set -euo pipefail
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
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
