#!/usr/bin/env bash
# Installs fastsockjs and starts the chat server on http://127.0.0.1:8081/ .
# A local sockjs-client copy is installed with npm when npm is available, so
# the page also works without internet access; otherwise the CDN copy is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install -q --disable-pip-version-check .
if command -v npm >/dev/null 2>&1 && [ ! -f .tools/node_modules/sockjs-client/package.json ]; then
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --loglevel=error sockjs-client@1.6.1 || true
fi
exec $PY -m fastsockjs chat --host "${HOST:-127.0.0.1}" --port "${PORT:-8081}" "$@"
