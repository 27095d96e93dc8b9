"""The servers the client tests run against: fastsockjs in-process (through
fastsockjs.testing.serve) and sockjs-node 0.3.24 (npm, installed here by
``npm ci`` on first use). Under CI=true a missing Node/npm fails the tests."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fastsockjs import Server, apps
from tests.helpers import CI, Proc

HERE = Path(__file__).parent
NODE_DIR = HERE / "node"
SOCKJS_NODE = "0.3.24"


def fastsockjs_servers() -> list[Server]:
    """The same services node/server.js mounts."""
    return [
        apps.echo(prefix="/echo"),
        apps.close(prefix="/close"),
        apps.echo(prefix="/cookie_needed_echo", jsessionid=True),
        apps.echo(prefix="/heartbeat", heartbeat_delay=0.2),
    ]


def _unavailable(message: str) -> None:
    if CI:
        pytest.fail(message + " -- required under CI=true", pytrace=False)
    pytest.skip(message)


def _installed() -> bool:
    try:
        manifest = NODE_DIR / "node_modules" / "sockjs" / "package.json"
        return bool(json.loads(manifest.read_text())["version"] == SOCKJS_NODE)
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="session")
def sockjs_node_dir() -> Path:
    """tests/client/node with sockjs@0.3.24 installed (npm ci, from the lock file)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} is not installed (run scripts/setup-system.sh)")
    if not _installed():
        result = subprocess.run(
            [shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=600, check=False,
        )
        if result.returncode != 0 or not _installed():
            _unavailable("npm ci of sockjs@0.3.24 failed:\n" + result.stderr[-2000:])
    return NODE_DIR


class NodeServer:
    """node/server.js in its own process group; restartable on the same port."""

    def __init__(self, node_dir: Path, log: Path) -> None:
        self.node_dir = node_dir
        self.log = log
        self.port = 0
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = Proc(
            "sockjs-node", [shutil.which("node") or "node", "server.js", str(self.port)],
            self.log, cwd=self.node_dir,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for line in self.proc.log_text().splitlines():
                if line.startswith("READY "):
                    self.port = int(line.split()[1])
            if self.port and "READY %d" % self.port in self.proc.log_text():
                return
            if not self.proc.alive():
                break
            time.sleep(0.05)
        log = self.proc.log_text()
        self.proc.stop()
        raise RuntimeError("sockjs-node did not start:\n" + log)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.stop(sig=9)
            self.log.write_text("")  # the next READY line is the new process's


ServeFn = Callable[[], AbstractAsyncContextManager[tuple[str, Callable[[], Any]]]]


@pytest.fixture(params=["fastsockjs", "sockjs-node"])
def sockjs_server(request: pytest.FixtureRequest, tmp_path: Path) -> ServeFn:
    """A context manager yielding (base URL, restart): restart() kills the server
    abruptly and starts a new one on the same port (sessions are lost)."""
    if request.param == "sockjs-node":
        node_dir = request.getfixturevalue("sockjs_node_dir")

        @asynccontextmanager
        async def node() -> AsyncIterator[tuple[str, Callable[[], Any]]]:
            server = NodeServer(node_dir, tmp_path / "sockjs-node.log")
            await asyncio.to_thread(server.start)

            async def restart() -> None:
                await asyncio.to_thread(server.kill)
                await asyncio.to_thread(server.start)

            try:
                yield f"http://127.0.0.1:{server.port}", restart
            finally:
                await asyncio.to_thread(server.kill)

        return node

    @asynccontextmanager
    async def inprocess() -> AsyncIterator[tuple[str, Callable[[], Any]]]:
        from fastsockjs.runner import serve as listen

        listeners = [await listen(*fastsockjs_servers(), host="127.0.0.1", port=0)]
        port = listeners[0].port

        async def restart() -> None:
            await listeners[-1].close()  # abrupt: connections cut, no close frames
            listeners.append(await listen(*fastsockjs_servers(), host="127.0.0.1", port=port))

        try:
            yield f"http://127.0.0.1:{port}", restart
        finally:
            await listeners[-1].close()

    return inprocess

