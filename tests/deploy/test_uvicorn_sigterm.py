"""SockJSApp under a real uvicorn: SIGTERM ends every session with 1001 (the
WebSocket, the stream and the poll between two polls) and uvicorn exits within
the graceful timeout, without a traceback (docs/asgi.md, "SIGTERM")."""

from __future__ import annotations

import http.client
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import websocket

from tests.deploy.cluster import free_port_range
from tests.helpers import Proc, wait_for

APP = '''
import fastsockjs
from fastsockjs.asgi import SockJSApp

server = fastsockjs.Server(prefix="/echo", heartbeat_delay=25)
server.on("connection", lambda conn: conn.on("data", conn.write))
app = SockJSApp(server, shutdown_timeout=3)
'''
SHUTDOWN = 'c[1001,"Server shutting down"]'


def _post(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=b"")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sigterm_under_uvicorn(tmp_path: Path, loop: str) -> None:
    pytest.importorskip("uvicorn")
    (tmp_path / "sigapp.py").write_text(APP)
    port = free_port_range(1)
    proc = Proc(
        "uvicorn",
        [sys.executable, "-m", "uvicorn", "sigapp:app", "--port", str(port), "--loop", loop,
         "--timeout-graceful-shutdown", "3", "--log-level", "info"],
        tmp_path / "uvicorn.log", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
    )
    try:
        wait_for(lambda: "Application startup complete" in proc.log_text(), 20, proc.log_text())
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/echo/000/ws1/websocket",
                                         timeout=10)
        assert ws.recv() == "o"
        stream = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream.sendall(b"POST /echo/000/st1/xhr_streaming HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 0\r\n\r\n")
        got = b""
        while b"o\n" not in got:
            got += stream.recv(65536)
        # A polling session between two polls: its close frame waits for its next poll.
        assert _post(port, "/echo/000/po1/xhr") == (200, b"o\n")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert ws.recv() == SHUTDOWN
        while SHUTDOWN.encode() not in got:
            data = stream.recv(65536)
            assert data, got[-200:]
            got += data
        time.sleep(0.2)
        assert _post(port, "/echo/000/po1/xhr") == (200, (SHUTDOWN + "\n").encode())
        code = proc.proc.wait(3 + 3 + 5)
        took = time.monotonic() - t0
        print(f"\nUVICORN {loop}: SIGTERM -> exit in {took:.2f} s (status {code})")
        log = proc.log_text()
        assert "Traceback" not in log and "CancelledError" not in log, log
        assert took < 3 + 3, log
    finally:
        proc.stop(5)
