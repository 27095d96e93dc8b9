"""Installs the real sockjs-client and playwright-core (npm) for these tests, once per
run, and finds Debian's Chromium for the real-browser tests.

Under CI=true a missing Node/npm/Chromium is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CI

HERE = Path(__file__).parent


def _missing_or_unpinned(modules: Path) -> list[str]:
    """package.json dependencies not installed at their pinned versions."""
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]
    bad = []
    for name, version in wanted.items():
        manifest = modules / name / "package.json"
        try:
            if json.loads(manifest.read_text())["version"] == version:
                continue
        except (OSError, ValueError, KeyError):
            pass
        bad.append(f"{name}@{version}")
    return bad


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (run scripts/setup-system.sh, or install Node.js)"
        if CI:
            pytest.fail(message + " -- required under CI=true")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def node_modules() -> Path:
    _need("node")
    npm = _need("npm")
    modules = HERE / "node_modules"
    if _missing_or_unpinned(modules):
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE, capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
        )
        if result.returncode != 0:
            message = "npm install failed:\n" + result.stderr[-2000:]
            if CI:
                pytest.fail(message)
            pytest.skip(message)
    return modules


#: Debian's package; FASTSOCKJS_CHROMIUM may point elsewhere. Never a downloaded build.
CHROMIUM = Path(os.environ.get("FASTSOCKJS_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        message = (
            f"{CHROMIUM} is not installed (run scripts/setup-system.sh, "
            "which installs Debian's chromium)"
        )
        if CI:
            pytest.fail(message + " -- required under CI=true")
        pytest.skip(message)
    return CHROMIUM
