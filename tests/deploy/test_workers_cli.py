"""The command line's process layouts: the HAProxy configuration it prints (and the
example file), the SO_REUSEPORT layout and its refusal, the supervisor's graceful
shutdown and its handling of a worker that cannot start."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import websocket

from tests.deploy.cluster import ROOT, Proc, RedisServer, free_port_range, wait_for
from tests.helpers import request

EXAMPLE = ROOT / "examples" / "haproxy.cfg"
EXAMPLE_ARGS = ["--workers", "2", "--port", "8081", "--listen-port", "8080", "--prefix", "/chat"]


def _close_code(ws: websocket.WebSocket) -> int:
    """Read up to the close frame; its status code."""
    for _ in range(100):
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")
    raise AssertionError("no close frame")


def fastsockjs(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastsockjs", *args], capture_output=True, text=True,
        timeout=timeout, cwd=ROOT,
    )


def test_example_config_is_the_generated_one_and_valid(haproxy_bin: str) -> None:
    generated = fastsockjs("haproxy-config", *EXAMPLE_ARGS)
    assert generated.returncode == 0, generated.stderr
    assert EXAMPLE.read_text() == generated.stdout, (
        "examples/haproxy.cfg is out of date: regenerate it with "
        "`fastsockjs haproxy-config " + " ".join(EXAMPLE_ARGS) + "`"
    )
    check = subprocess.run([haproxy_bin, "-c", "-f", str(EXAMPLE)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    text = EXAMPLE.read_text()
    for needle in ("balance uri depth 2", "hash-type consistent", "timeout tunnel 1h",
                   "timeout server 60s", "timeout client 60s",
                   "check inter 1s fastinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions",
                   "timeout check 1s", "http-check disable-on-404", "option abortonclose",
                   "option forwardfor", "option http-no-delay",
                   "uri /_health?drain_status=404"):
        assert needle in text


def test_haproxy_config_for_other_prefixes(haproxy_bin: str, tmp_path: Path) -> None:
    out = fastsockjs("haproxy-config", "--workers", "3", "--port", "9000", "--listen-port",
                     "9100", "--prefix", "/a", "--prefix", "/b/c", "--prefix", "/echo.v2")
    assert out.returncode == 0, out.stderr
    cfg = tmp_path / "h.cfg"
    cfg.write_text(out.stdout)
    check = subprocess.run([haproxy_bin, "-c", "-f", str(cfg)], capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "balance uri depth 3" in out.stdout and "server w2 127.0.0.1:9002" in out.stdout
    bad = fastsockjs("haproxy-config", "--workers", "2", "--port", "9000", "--listen-port",
                     "9100", "--prefix", "/it's")
    assert bad.returncode != 0 and "prefix" in bad.stderr


def test_reuse_port_is_refused_with_polling_transports() -> None:
    out = fastsockjs("chat", "--workers", "2", "--reuse-port", "--port", "8081")
    assert out.returncode != 0
    assert "--reuse-port needs WebSocket-only servers" in out.stderr
    assert "xhr-polling" in out.stderr and "do not own the session" in out.stderr
    out = fastsockjs("testserver", "--reuse-port", "--port", "8081")
    assert out.returncode != 0 and "--reuse-port" in out.stderr


def test_workers_need_an_explicit_port() -> None:
    out = fastsockjs("echo", "--workers", "2", "--port", "0")
    assert out.returncode != 0 and "explicit --port" in out.stderr


def test_a_worker_that_cannot_start_stops_the_group(tmp_path: Path) -> None:
    port = free_port_range(2)
    with socket.socket() as taken:  # our own socket holds the second worker's port
        taken.bind(("127.0.0.1", port + 1))
        taken.listen(1)
        proc = Proc("fastsockjs", [sys.executable, "-m", "fastsockjs", "echo", "--workers", "2",
                                   "--port", str(port)], tmp_path / "log", cwd=ROOT)
        try:
            proc.proc.wait(20)
        finally:
            code = proc.stop(5)
    assert code == 1, proc.log_text()
    log = proc.log_text()
    assert "worker w1 exited with status 1" in log and "stopping" in log


def test_reuse_port_websockets_graceful_shutdown(redis: RedisServer, tmp_path: Path) -> None:
    """Two workers on one port (SO_REUSEPORT), WebSocket transports only, fan-out
    through Redis; SIGTERM to the supervisor closes every session with 1001."""
    port = free_port_range(1)
    proc = Proc(
        "fastsockjs",
        [sys.executable, "-m", "fastsockjs", "chat", "--workers", "2", "--reuse-port",
         "--port", str(port), "--transports", "websocket,websocket-raw",
         "--broker", redis.url],
        tmp_path / "log", cwd=ROOT,
    )
    sockets: list[websocket.WebSocket] = []
    try:
        log = proc.log_text
        wait_for(lambda: log().count("listening on") == 2, 20, f"two workers\n{log()}")
        wait_for(lambda: log().count("connected to Redis") == 2, 20, f"redis\n{log()}")
        # Polling is off everywhere: a session request is refused on any worker.
        assert request(port, "POST", "/chat/000/abc/xhr").status == 404
        info = json.loads(request(port, "GET", "/chat/info").body)
        assert info["websocket"] is True
        # The kernel spreads connections over both workers.
        seen: dict[str, websocket.WebSocket] = {}
        for _ in range(60):
            ws = websocket.create_connection(
                f"ws://127.0.0.1:{port}/chat/websocket?room=rp", timeout=10
            )
            sockets.append(ws)
            hello = json.loads(ws.recv())
            assert hello["type"] == "hello" and hello["transport"] == "websocket-raw"
            seen.setdefault(hello["worker"], ws)
            if len(seen) == 2:
                break
        assert set(seen) == {"w0", "w1"}
        # A SockJS-framed WebSocket session too.
        sock_ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/chat/000/abcd/websocket?room=rp", timeout=10
        )
        sockets.append(sock_ws)
        assert sock_ws.recv() == "o"
        assert json.loads(json.loads(sock_ws.recv()[1:])[0])["type"] == "hello"
        # Fan-out across the two workers.
        seen["w0"].send("from w0")
        for ws in [*seen.values(), sock_ws]:
            while True:
                frame = ws.recv()
                if frame.startswith("a"):
                    frame = json.loads(frame[1:])[0]
                msg = json.loads(frame) if frame not in ("h", "o") else {}
                if msg.get("type") == "message":
                    assert msg["text"] == "from w0" and msg["worker"] == "w0"
                    break
        # Graceful shutdown: the supervisor forwards SIGTERM, sessions get 1001
        # (the clients answer the close handshake), then everything exits.
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # (Chat frames already on their way, e.g. the room's history, may come first.)
        frames = [sock_ws.recv() for _ in range(1)]
        while frames[-1].startswith("a") and len(frames) < 20:
            frames.append(sock_ws.recv())
        assert frames[-1] == 'c[1001,"Server shutting down"]', frames
        _close_code(sock_ws)  # and the WebSocket close handshake after it
        for ws in sockets:
            if ws is not sock_ws:
                assert _close_code(ws) == 1001
        assert proc.proc.wait(15) == 0, log()
        assert time.monotonic() - started < 5
        assert "got SIGTERM: stopping 2 worker(s)" in log()
        assert log().count("shutting down") == 2
        assert "all workers stopped" in log()
    finally:
        for ws in sockets:
            try:
                ws.close(timeout=1)
            except Exception:
                pass
        proc.stop(10)


RUN_FACTORY = '''
import os
import fastsockjs


def make():
    server = fastsockjs.Server(prefix="/app")

    @server.on("connection")
    def _open(conn):
        worker = os.environ.get("FASTSOCKJS_WORKER_ID", "?")
        conn.on("data", lambda m: conn.write(worker + ":" + m))

    return [server]
'''


def test_run_factory_with_workers(tmp_path: Path) -> None:
    """`fastsockjs run module:factory --workers 2`: one port per worker, each
    worker serving the user's Servers under its own id, and a graceful stop."""
    (tmp_path / "userapp.py").write_text(RUN_FACTORY)
    port = free_port_range(2)
    proc = Proc(
        "fastsockjs-run",
        [sys.executable, "-m", "fastsockjs", "run", "userapp:make", "--workers", "2",
         "--port", str(port)],
        tmp_path / "log", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
    )
    try:
        log = proc.log_text
        wait_for(lambda: log().count("listening on") == 2, 20, f"two workers\n{log()}")
        for i in range(2):
            status = json.loads(request(port + i, "GET", "/_status").body)
            assert status["worker"] == f"w{i}"
            ws = websocket.create_connection(
                f"ws://127.0.0.1:{port + i}/app/000/s{i}/websocket", timeout=10)
            assert ws.recv() == "o"
            ws.send('["hi"]')
            assert ws.recv() == f'a["w{i}:hi"]'
            ws.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0, log()
        assert "all workers stopped" in log()
    finally:
        proc.stop()


def test_haproxy_timeouts_follow_a_long_heartbeat(haproxy_bin: str, tmp_path: Path) -> None:
    out = fastsockjs("haproxy-config", "--workers", "2", "--port", "9000", "--listen-port",
                     "9100", "--heartbeat-delay", "100")
    assert out.returncode == 0, out.stderr
    assert "timeout client 210s" in out.stdout and "timeout server 210s" in out.stdout
    cfg = tmp_path / "h.cfg"
    cfg.write_text(out.stdout)
    check = subprocess.run([haproxy_bin, "-c", "-f", str(cfg)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    bad = fastsockjs("haproxy-config", "--workers", "2", "--port", "9000", "--listen-port",
                     "9100", "--heartbeat-delay", "25000")
    assert bad.returncode != 0 and "at most an hour" in bad.stderr
