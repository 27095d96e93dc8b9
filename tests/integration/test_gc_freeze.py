"""Start-up objects frozen out of the garbage collector's reach: by default once the
command line's server (each worker's under ``--workers``) or ``fastsockjs.run``
listens, not with ``--no-gc-freeze`` / ``gc_freeze=False``, and never by
``fastsockjs.serve`` unless asked (it runs inside someone else's process).

The probe is the served application itself: on each new session it reports
``gc.get_freeze_count()`` and whether its own Server object is still among the
objects the collector traverses (``gc.get_objects()`` leaves out frozen ones)."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

import fastsockjs
from tests.deploy.cluster import free_port_range
from tests.helpers import Proc, RawWebSocket, wait_for
from tests.integration.test_cli import Cli

PROBE = '''
import gc
import json
import fastsockjs


def report(server):
    return json.dumps({
        "frozen": gc.get_freeze_count(),
        "server_traversed": any(o is server for o in gc.get_objects()),
    })


def make():
    server = fastsockjs.Server(prefix="/probe")

    @server.on("connection")
    def _open(conn):
        conn.write(report(server))

    return [server]
'''


def probe(port: int) -> dict[str, Any]:
    """What the probe application reports to a new WebSocket session."""
    ws = RawWebSocket(port, f"/probe/000/{uuid.uuid4().hex}/websocket")
    try:
        assert ws.recv_text() == "o"
        frame = ws.recv_text()
    finally:
        ws.close()
    assert frame.startswith("a["), frame
    result: dict[str, Any] = json.loads(json.loads(frame[1:])[0])
    return result


@pytest.mark.parametrize("opt_out", [False, True], ids=["default", "no-gc-freeze"])
def test_cli_freezes_startup_objects_unless_told_not_to(tmp_path: Path, opt_out: bool) -> None:
    (tmp_path / "probe_mod.py").write_text(textwrap.dedent(PROBE))
    cli = Cli(tmp_path, "run", "probe_mod:make", *(["--no-gc-freeze"] if opt_out else []))
    try:
        seen = probe(cli.port)
    finally:
        cli.stop()
    if opt_out:
        assert seen == {"frozen": 0, "server_traversed": True}
    else:
        assert seen["frozen"] > 0 and seen["server_traversed"] is False, seen


@pytest.mark.parametrize("opt_out", [False, True], ids=["default", "no-gc-freeze"])
def test_every_worker_freezes_unless_told_not_to(tmp_path: Path, opt_out: bool) -> None:
    (tmp_path / "probe_mod.py").write_text(textwrap.dedent(PROBE))
    port = free_port_range(2)
    proc = Proc(
        "fastsockjs",
        [sys.executable, "-m", "fastsockjs", "run", "probe_mod:make", "--workers", "2",
         "--port", str(port), *(["--no-gc-freeze"] if opt_out else [])],
        tmp_path / "workers.log", env={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path,
    )
    try:
        wait_for(lambda: proc.log_text().count("listening on") == 2, 30,
                 f"two workers\n{proc.log_text()}")
        seen = [probe(port), probe(port + 1)]
    finally:
        proc.stop()
    for worker in seen:
        if opt_out:
            assert worker == {"frozen": 0, "server_traversed": True}
        else:
            assert worker["frozen"] > 0 and worker["server_traversed"] is False, worker


RUN = '''
import gc
import os
import signal
import sys

import fastsockjs

server = fastsockjs.Server(prefix="/x")


def listening(port):
    # Called once the socket listens: by then the freeze (if any) is done.
    print("FROZEN", gc.get_freeze_count(), any(o is server for o in gc.get_objects()),
          flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


fastsockjs.run(server, port=0, on_listening=listening, {kwargs})
'''


@pytest.mark.parametrize(
    ("kwargs", "frozen"), [("", True), ("gc_freeze=False", False)], ids=["default", "opt-out"]
)
def test_run_freezes_before_on_listening(tmp_path: Path, kwargs: str, frozen: bool) -> None:
    script = tmp_path / "run_probe.py"
    script.write_text(textwrap.dedent(RUN).replace("{kwargs}", kwargs))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("FROZEN "))
    _, count, traversed = line.split()
    if frozen:
        assert int(count) > 0 and traversed == "False", line
    else:
        assert (count, traversed) == ("0", "True"), line


def test_serve_leaves_the_process_gc_alone() -> None:
    """``serve`` runs inside this test process: it must not freeze anything here."""
    before = gc.get_freeze_count()
    server = fastsockjs.Server(prefix="/x")

    async def main() -> None:
        listener = await fastsockjs.serve(server, port=0)
        try:
            assert gc.get_freeze_count() == before
            assert any(o is server for o in gc.get_objects())
        finally:
            await listener.close()

    asyncio.run(asyncio.wait_for(main(), 30))
