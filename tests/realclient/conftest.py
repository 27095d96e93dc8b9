"""Installs the real sockjs-client (npm) for these tests, once per run.

Under CI=true a missing Node/npm is a failure, not a skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CI

HERE = Path(__file__).parent


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (run .ci/setup or install Node.js)"
        if CI:
            pytest.fail(message + " -- required under CI=true")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def node_modules() -> Path:
    _need("node")
    npm = _need("npm")
    modules = HERE / "node_modules"
    if not (modules / "sockjs-client" / "package.json").is_file():
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE, capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            message = "npm install failed:\n" + result.stderr[-2000:]
            if CI:
                pytest.fail(message)
            pytest.skip(message)
    return modules
