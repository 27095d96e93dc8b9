#!/usr/bin/env bash
# Installs everything the tests need, then runs every test:
#   1. system programs (scripts/setup-system.sh: python3-venv, compiler, Node.js,
#      Chromium, redis-server, haproxy), npm packages (by the tests),
#   2. the virtual environment .venv in this checkout (scripts/venv.sh; PYTHON= picks
#      the interpreter) with the package, its C extension (required) and the test and
#      lint extras,
#   3. ruff, mypy --strict, stubtest and the import layers (lint-imports), the whole
#      suite, then the core suites again on the pure-Python twin.
set -euo pipefail
cd "$(dirname "$0")/.."
export FASTSOCKJS_BUILD_EXTENSION=${FASTSOCKJS_BUILD_EXTENSION:-required}
bash scripts/setup-system.sh
. scripts/venv.sh
fastsockjs_venv "test,lint"
PY=$VPY
echo "== ruff, mypy --strict, stubtest, lint-imports"
$PY -m ruff check fastsockjs tests bench fuzz
$PY -m mypy --strict fastsockjs
# The layers and host independence of docs/architecture.md (pyproject.toml's contracts).
"$(dirname "$PY")/lint-imports"
# The compiled module against its .pyi (skipped only when the build skipped it).
for kernel in fastsockjs._frames fastsockjs._http; do
  if $PY -c "import $kernel" 2>/dev/null; then
    $PY -m mypy.stubtest "$kernel"
  fi
done
$PY -c 'import fastsockjs; print("fastsockjs speedups_enabled =", fastsockjs.speedups_enabled)'
$PY -m pytest -q -p no:cacheprovider "$@"
echo "== again with the pure-Python twin (FASTSOCKJS_PURE_PYTHON=1)"
FASTSOCKJS_PURE_PYTHON=1 $PY -m pytest -q -p no:cacheprovider tests/unit tests/integration
