#!/usr/bin/env bash
# Starts the chat server on http://127.0.0.1:8081/ , from the virtual environment
# .venv in this checkout (made, or reused, by scripts/venv.sh; PYTHON= picks the
# interpreter). A local sockjs-client copy is installed with npm when npm is
# available, so the page also works without internet access; otherwise the CDN
# copy is used (and the page says so if it cannot load it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
fastsockjs_venv ""
if command -v npm >/dev/null 2>&1 && [ ! -f .tools/node_modules/sockjs-client/package.json ]; then
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --loglevel=error sockjs-client@1.6.1 || true
fi
exec "$VPY" -m fastsockjs chat --host "${HOST:-127.0.0.1}" --port "${PORT:-8081}" "$@"
