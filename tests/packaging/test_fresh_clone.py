"""The README's chat command as a newcomer runs it: a fresh clone, Debian's own
``/usr/bin/python3`` (externally managed, PEP 668), ``bash scripts/chat.sh``. The
script must make ``.venv`` in the clone, install there (never into the system Python)
and serve the page; a second run reuses the venv without reinstalling.

Slow (a pip install and the extension's build in a new venv): marked ``slow`` and
bounded. Under CI=true a missing system Python, venv module or git is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CI, Proc, request, wait_for

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path(os.environ.get("FASTSOCKJS_SYSTEM_PYTHON", "/usr/bin/python3"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux system Python"),
]


def _missing(message: str) -> None:
    if CI:
        pytest.fail(message + " -- required under CI=true", pytrace=False)
    pytest.skip(message)


def _system_python() -> Path:
    if not (SYSTEM_PYTHON.is_file() and os.access(SYSTEM_PYTHON, os.X_OK)):
        _missing(f"{SYSTEM_PYTHON} is not installed (Debian's python3 package)")
    check = subprocess.run(
        [str(SYSTEM_PYTHON), "-c",
         "import sys; assert sys.version_info >= (3, 11), sys.version; import ensurepip"],
        capture_output=True, text=True, timeout=60,
    )
    if check.returncode != 0:
        _missing(f"{SYSTEM_PYTHON} is older than 3.11 or has no venv support (install"
                 f" python3-venv: bash scripts/setup-system.sh): {check.stderr.strip()[-300:]}")
    return SYSTEM_PYTHON


def test_chat_script_runs_from_a_fresh_clone_with_the_system_python(tmp_path: Path) -> None:
    python = _system_python()
    git = shutil.which("git")
    if git is None:
        _missing("git is not installed")
    assert git is not None
    clone = tmp_path / "clone"
    subprocess.run([git, "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120,
                   capture_output=True)
    assert not (clone / ".venv").exists()
    from tests.deploy.cluster import free_port

    port = free_port()
    env = {
        "PYTHON": str(python), "PORT": str(port),
        # What a newcomer's shell has: no venv, no build or client overrides of this run.
        "VIRTUAL_ENV": "", "PYTHONPATH": "", "FASTSOCKJS_BUILD_EXTENSION": "optional",
        "FASTSOCKJS_SOCKJS_CLIENT": "", "FASTSOCKJS_PURE_PYTHON": "",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    proc = Proc("chat.sh", ["bash", "scripts/chat.sh", "--log-level", "warning"],
                tmp_path / "chat.log", env=env, cwd=clone)
    try:
        def page_answers() -> bool:
            assert proc.alive(), f"scripts/chat.sh exited ({proc.proc.returncode}):\n" \
                                 f"{proc.log_text()}"
            r = request(port, "GET", "/")
            return r.status == 200 and b'id="messages"' in r.body

        wait_for(page_answers, 600, f"the chat page from the fresh clone\n{proc.log_text()}",
                 interval=0.5)
        assert request(port, "GET", "/chat/info").status == 200
        # chat.sh exec'd the clone's venv interpreter, which imports the clone's package.
        argv0 = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0 == str(clone / ".venv" / "bin" / "python"), argv0
        where = subprocess.run(
            [str(clone / ".venv" / "bin" / "python"), "-c",
             "import sys, fastsockjs; print(fastsockjs.__file__); print(sys.prefix)"],
            capture_output=True, text=True, timeout=60, cwd="/", check=True,
        ).stdout.split()
        assert where == [str(clone / "fastsockjs" / "__init__.py"), str(clone / ".venv")]
    finally:
        proc.stop(10)
    # A second run reuses the venv: no reinstall.
    again = subprocess.run(
        ["bash", "-c", '. scripts/venv.sh && fastsockjs_venv "" && echo "$VPY"'],
        cwd=clone, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "installing" not in again.stderr and "making" not in again.stderr, again.stderr
    assert again.stdout.strip() == str(clone / ".venv" / "bin" / "python")
