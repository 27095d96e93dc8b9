#!/usr/bin/env bash
# Installs everything the tests need, then runs every test:
#   1. the package with its C extension (required), the test and lint extras,
#   2. system programs (scripts/setup-system.sh), npm packages (by the tests),
#   3. ruff, mypy --strict and stubtest, the whole suite, then the core suites again on
#      the pure-Python twin.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export FASTSOCKJS_BUILD_EXTENSION=${FASTSOCKJS_BUILD_EXTENSION:-required}
$PY -m pip install -q --disable-pip-version-check -e '.[test,lint]'
bash scripts/setup-system.sh
echo "== ruff, mypy --strict, stubtest"
$PY -m ruff check fastsockjs tests bench fuzz
$PY -m mypy --strict fastsockjs
# The compiled module against its .pyi (skipped only when the build skipped it).
if $PY -c 'import fastsockjs._frames' 2>/dev/null; then
  $PY -m mypy.stubtest fastsockjs._frames
fi
$PY -c 'import fastsockjs; print("fastsockjs speedups_enabled =", fastsockjs.speedups_enabled)'
$PY -m pytest -q -p no:cacheprovider "$@"
echo "== again with the pure-Python twin (FASTSOCKJS_PURE_PYTHON=1)"
FASTSOCKJS_PURE_PYTHON=1 $PY -m pytest -q -p no:cacheprovider tests/unit tests/integration
