"""The command line in one process: every server command starts on --port 0,
serves a SockJS session, and on SIGTERM or SIGINT closes it with
c[1001,"Server shutting down"] and exits 0; `run module:factory` serves the
user's Servers and emits 'close' exactly once per session."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import Proc, RawWebSocket, assert_stalled_request_gets_408, request, wait_for

ROOT = Path(__file__).resolve().parents[2]

FACTORY = '''
import logging
import fastsockjs

log = logging.getLogger("factory")


def make():
    server = fastsockjs.Server(prefix="/mine")

    @server.on("connection")
    def _open(conn):
        conn.on("data", lambda m: conn.write("mine:" + m))
        conn.on("close", lambda: log.warning("closed %s", conn.id))

    return [server]
'''


class Cli:
    """``python -m fastsockjs ARGS --port 0`` as a child (tests.helpers.Proc); the
    port it bound is read back from its 'listening on' line."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.child = Proc(
            "fastsockjs",
            [sys.executable, "-m", "fastsockjs", *args, "--host", "127.0.0.1", "--port", "0",
             "--log-level", "info"],
            tmp / f"cli-{uuid.uuid4().hex[:8]}.log", env={"PYTHONPATH": str(tmp)}, cwd=tmp,
        )
        self.proc = self.child.proc

        def listening() -> int | None:
            assert self.child.alive(), self.text()
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.text())
            return int(m.group(1)) if m else None

        self.port: int = wait_for(listening, 20, "the 'listening on' line")

    def text(self) -> str:
        return self.child.log_text(tail=1 << 20)

    def stop(self) -> None:
        self.child.stop(timeout=0, sig=signal.SIGKILL)


@pytest.mark.parametrize(
    ("command", "prefix", "sig"),
    [
        (["echo"], "/echo", signal.SIGTERM),
        (["echo", "--prefix", "/e2"], "/e2", signal.SIGINT),
        (["testserver"], "/echo", signal.SIGTERM),
        (["chat"], "/chat", signal.SIGINT),
        (["run", "factory_mod:make"], "/mine", signal.SIGTERM),
    ],
    ids=["echo-term", "echo-prefix-int", "testserver-term", "chat-int", "run-term"],
)
def test_command_serves_then_shuts_down_gracefully(
    tmp_path: Path, command: list[str], prefix: str, sig: signal.Signals
) -> None:
    (tmp_path / "factory_mod.py").write_text(textwrap.dedent(FACTORY))
    cli = Cli(tmp_path, *command)
    try:
        assert request(cli.port, "GET", prefix).body == b"Welcome to SockJS!\n"
        ws = RawWebSocket(cli.port, f"{prefix}/000/{uuid.uuid4().hex}/websocket")
        assert ws.recv_text() == "o"
        if command[0] in ("echo", "run"):
            ws.send_text('["hi"]')
            expected = 'a["mine:hi"]' if command[0] == "run" else 'a["hi"]'
            assert ws.recv_text() == expected
        t0 = time.monotonic()
        cli.proc.send_signal(sig)
        frames = []
        while (f := ws.recv_text()) != 'c[1001,"Server shutting down"]':
            frames.append(f)  # a chat greeting or heartbeat may come first
            assert len(frames) < 10, frames
        assert cli.proc.wait(15) == 0, cli.text()
        assert time.monotonic() - t0 < 10
        ws.close()
        if command[0] == "run":
            assert cli.text().count("closed ") == 1, cli.text()
    finally:
        cli.stop()


def test_bad_log_level_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fastsockjs", "echo", "--log-level", "loud"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert out.returncode == 2 and "--log-level" in out.stderr


def test_metrics_path_flag_serves_prometheus_with_the_worker_label(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "echo", "--metrics-path", "/metrics")
    try:
        r = request(cli.port, "GET", "/metrics")
        assert r.status == 200
        assert f'worker="pid{cli.proc.pid}"' in r.body.decode()
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.proc.wait(15) == 0
    finally:
        cli.stop()


def test_listener_limits_from_the_command_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "echo", "--request-timeout", "0.5", "--max-body", "1500000")
    try:
        assert_stalled_request_gets_408(cli.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        url = f"/echo/000/{uuid.uuid4().hex}"
        assert request(cli.port, "POST", url + "/xhr").body == b"o\n"
        # Three 600 kB messages: each under max_message_size, together over --max-body.
        part = '"' + "z" * 600_000 + '"'
        assert request(cli.port, "POST", url + "/xhr_send", f"[{part}]").status == 204
        assert request(cli.port, "POST", url + "/xhr_send", f"[{part},{part},{part}]").status == 413
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.proc.wait(15) == 0
    finally:
        cli.stop()


def test_an_installed_sockjs_client_of_another_version_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastsockjs import cli

    dist = tmp_path / "node_modules" / "sockjs-client" / "dist"
    dist.mkdir(parents=True)
    (dist / "sockjs.min.js").write_text("/* old */")
    manifest = dist.parent / "package.json"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FASTSOCKJS_SOCKJS_CLIENT", raising=False)
    manifest.write_text('{"version": "1.5.2"}')
    assert cli.find_sockjs_client() != dist / "sockjs.min.js"
    manifest.write_text('{"version": "%s"}' % cli.SOCKJS_CLIENT_VERSION)
    assert cli.find_sockjs_client() == dist / "sockjs.min.js"
    # A file named explicitly is the user's choice.
    manifest.write_text('{"version": "1.5.2"}')
    assert cli.find_sockjs_client(str(dist / "sockjs.min.js")) == dist / "sockjs.min.js"


def test_chat_page_and_iframe_load_the_same_local_client(tmp_path: Path) -> None:
    client = tmp_path / "sockjs.min.js"
    client.write_text("/* sockjs-client v1.6.1 stand-in */")
    cli = Cli(tmp_path, "chat", "--sockjs-client", str(client))
    try:
        page = request(cli.port, "GET", "/").body.decode()
        iframe = request(cli.port, "GET", "/chat/iframe.html").body.decode()
        src = "/static/sockjs-client-1.6.1.min.js"
        assert f'src="{src}"' in page and f'src="{src}"' in iframe
        assert request(cli.port, "GET", src).body == client.read_bytes()
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.proc.wait(15) == 0
    finally:
        cli.stop()
    cli = Cli(tmp_path, "echo", "--sockjs-url", "https://cdn.example/sockjs-1.6.1.min.js")
    try:
        iframe = request(cli.port, "GET", "/echo/iframe.html").body.decode()
        assert 'src="https://cdn.example/sockjs-1.6.1.min.js"' in iframe
    finally:
        cli.stop()


def test_ws_compression_flag(tmp_path: Path) -> None:
    for args, offered in ((("echo", "--ws-compression"), True), (("echo",), False)):
        cli = Cli(tmp_path, *args)
        try:
            ws = RawWebSocket(cli.port, "/echo/websocket",
                              {"Sec-WebSocket-Extensions": "permessage-deflate"})
            assert ws.status == 101
            assert ("permessage-deflate" in ws.headers.get("sec-websocket-extensions", "")) \
                == offered, args
            ws.close()
        finally:
            cli.stop()
