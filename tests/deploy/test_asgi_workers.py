"""`fastsockjs run module:factory --asgi module:app --workers 2`: each worker hosts
the ASGI application for the other paths, and runs its lifespan startup when the
worker starts -- before the first request -- and its shutdown on SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import websocket

from tests.deploy.cluster import ROOT, free_port_range
from tests.helpers import Proc, request, wait_for

USERAPP = '''
import json
import os
from pathlib import Path

import fastsockjs

MARKS = Path(os.environ["MARKS"])


def make():
    server = fastsockjs.Server(prefix="/app")
    server.on("connection", lambda conn: conn.on("data", conn.write))
    return [server]


async def api(scope, receive, send):
    worker = os.environ.get("FASTSOCKJS_WORKER_ID", "?")
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                (MARKS / f"start-{worker}").write_text("1")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                (MARKS / f"stop-{worker}").write_text("1")
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({"worker": worker, "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
'''


def test_run_with_asgi_app_and_workers(tmp_path: Path) -> None:
    (tmp_path / "userapp.py").write_text(USERAPP)
    marks = tmp_path / "marks"
    marks.mkdir()
    port = free_port_range(2)
    proc = Proc(
        "fastsockjs-run-asgi",
        [sys.executable, "-m", "fastsockjs", "run", "userapp:make", "--asgi", "userapp:api",
         "--workers", "2", "--port", str(port)],
        tmp_path / "log", cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "MARKS": str(marks)},
    )
    try:
        log = proc.log_text
        wait_for(lambda: log().count("listening on") == 2, 20, f"two workers\n{log()}")
        # The lifespan ran at start, before any request reached the app.
        assert sorted(p.name for p in marks.iterdir()) == ["start-w0", "start-w1"], log()
        for i in range(2):
            r = request(port + i, "GET", "/api/hello")
            assert r.status == 200 and json.loads(r.body) == {"worker": f"w{i}", "path": "/api/hello"}
            assert request(port + i, "GET", "/_health").status == 200
            ws = websocket.create_connection(f"ws://127.0.0.1:{port + i}/app/000/s{i}/websocket",
                                             timeout=10)
            assert ws.recv() == "o"
            ws.send('["hi"]')
            assert ws.recv() == 'a["hi"]'
            ws.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0, log()
        assert {"stop-w0", "stop-w1"} <= {p.name for p in marks.iterdir()}, log()
    finally:
        proc.stop()
