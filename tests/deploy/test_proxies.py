"""Proxies exactly as documented: sockjs-client (Node) through a real nginx run
with docs/deployment.md's nginx block (TLS at nginx, as documented), and through
HAProxy run with ``fastsockjs haproxy-config``'s output in front of two workers;
websocket, xhr-streaming and xhr-polling. A poll the client aborts must not
stay attached at the worker (HAProxy's ``option abortonclose``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.cluster import ROOT, HAProxy, free_port, free_port_range
from tests.deploy.conftest import _find
from tests.helpers import TIMEOUT, Proc, TlsFiles, request, wait_for

pytestmark = pytest.mark.realclient

NODE_CLIENT = ROOT / "tests" / "realclient" / "node_client.js"
APP = "tests.deploy.proxy_app:servers"


def documented_nginx_block() -> str:
    """The complete configuration block of docs/deployment.md's nginx section."""
    text = (ROOT / "docs" / "deployment.md").read_text("utf-8")
    blocks = re.findall(r"```nginx\n(.*?)```", text, re.S)
    found = [b for b in blocks if "upstream fastsockjs" in b]
    assert len(found) == 1, "docs/deployment.md should have one complete nginx block"
    return found[0]


def nginx_conf(workdir: Path, port: int, upstream: int, tls: TlsFiles) -> str:
    block = documented_nginx_block()
    # Only the addresses and file names of this machine change; every setting stays.
    swaps = [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{free_port()};"),
        ("server 127.0.0.1:8081;", f"server 127.0.0.1:{upstream};"),
        ("/etc/ssl/example.com/fullchain.pem", str(tls.certfile)),
        ("/etc/ssl/example.com/privkey.pem", str(tls.keyfile)),
        ("root /srv/www;", f"root {workdir / 'www'};"),
    ]
    for old, new in swaps:
        assert old in block, f"the documented block no longer has {old!r}"
        block = block.replace(old, new)
    temp = workdir / "temp"
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / name).mkdir(parents=True, exist_ok=True)
    (workdir / "www").mkdir(exist_ok=True)
    paths = "\n".join(
        f"    {directive} {temp / name};"
        for directive, name in (("client_body_temp_path", "body"), ("proxy_temp_path", "proxy"),
                                ("fastcgi_temp_path", "fastcgi"), ("uwsgi_temp_path", "uwsgi"),
                                ("scgi_temp_path", "scgi"))
    )
    # Started by root, nginx's workers would run as nobody, who cannot reach the
    # test's private temp directory (large xhr_send bodies are buffered there).
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        user +
        "worker_processes 1;\n"
        f"pid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {workdir / 'access.log'};\n"
        f"{paths}\n"
        f"{block}\n"
        "}\n"
    )


def run_node(base: str, transport: str, extra_env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    result = subprocess.run(
        [shutil.which("node") or "node", str(NODE_CLIENT), base, transport],
        cwd=NODE_CLIENT.parent, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(extra_env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out: dict = json.loads(result.stdout.strip().split("\n")[-1])  # type: ignore[type-arg]
    return out


def assert_echoed(out: dict, transport: str) -> None:  # type: ignore[type-arg]
    assert out["transport"] == transport, out
    assert out["echo"] == out["sent"]
    assert out["code"] == 4000
    assert (out["closeCode"], out["closeReason"]) == (3000, "Go away!")


# -- nginx ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nginx(
    node_modules: Path, tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    binary = _find("nginx")
    workdir = tmp_path_factory.mktemp("nginx")
    upstream = free_port()
    app = Proc("app", [sys.executable, "-m", "fastsockjs", "run", APP, "--port", str(upstream),
                       "--forwarded-allow-ips", "127.0.0.1"], workdir / "app.log", cwd=ROOT)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_conf(workdir, port, upstream, tls))
    proxy = None
    try:
        wait_for(lambda: request(upstream, "GET", "/chat/echo/info").status == 200, 20,
                 f"the app\n{app.log_text()}")
        check = subprocess.run([binary, "-t", "-p", str(workdir), "-c", str(conf)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr + conf.read_text()
        proxy = Proc("nginx", [binary, "-p", str(workdir), "-c", str(conf), "-g",
                               "daemon off;"], workdir / "nginx.out", cwd=workdir)
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True, 20,
                 f"nginx\n{proxy.log_text()}")
        yield port
    finally:
        if proxy is not None:
            proxy.stop(10)
        app.stop(10)


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
def test_sockjs_client_through_nginx(
    nginx: int, tls: TlsFiles, transport: str
) -> None:
    out = run_node(f"https://127.0.0.1:{nginx}/chat", transport,
                   {"NODE_EXTRA_CA_CERTS": str(tls.ca)})
    assert_echoed(out, transport)


# -- HAProxy ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def haproxy(
    node_modules: Path, haproxy_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, int]]:
    workdir = tmp_path_factory.mktemp("haproxy")
    first = free_port_range(2)
    listen = free_port()
    config = subprocess.run(
        [sys.executable, "-m", "fastsockjs", "haproxy-config", "--workers", "2", "--port",
         str(first), "--listen-port", str(listen), "--prefix", "/chat/echo",
         "--prefix", "/chat/close"],
        capture_output=True, text=True, timeout=60, check=True, cwd=ROOT,
    ).stdout
    workers = Proc("workers", [sys.executable, "-m", "fastsockjs", "run", APP, "--workers", "2",
                               "--port", str(first), "--forwarded-allow-ips", "127.0.0.1"],
                   workdir / "workers.log", cwd=ROOT)
    proxy = None
    try:
        for port in (first, first + 1):
            wait_for(lambda p=port: request(p, "GET", "/chat/echo/info").status == 200, 30,
                     f"worker {port}\n{workers.log_text()}")
        proxy = HAProxy(haproxy_bin, config, workdir)
        wait_for(lambda: request(listen, "GET", "/chat/echo/info").status == 200, 20,
                 f"haproxy\n{proxy.proc.log_text()}")
        yield listen, first
    finally:
        if proxy is not None:
            proxy.stop()
        workers.stop(15)


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
def test_sockjs_client_through_haproxy(haproxy: tuple[int, int], transport: str) -> None:
    out = run_node(f"http://127.0.0.1:{haproxy[0]}/chat", transport)
    assert_echoed(out, transport)


def aborted_poll(port: int, sid: str) -> tuple[str, str]:
    """Open a session, hold a poll, abort it, send a message, poll again:
    (what the send got, what the next poll got)."""
    base = f"/chat/echo/000/{sid}"
    assert request(port, "POST", base + "/xhr").text == "o\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(f"POST {base}/xhr HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
              .encode())
    time.sleep(0.3)  # the poll is held at the worker
    s.close()  # the client gives up on it
    time.sleep(0.5)
    sent = request(port, "POST", base + "/xhr_send", '["after"]')
    again = request(port, "POST", base + "/xhr")
    return f"{sent.status}", again.text


def test_aborted_poll_is_let_go(haproxy: tuple[int, int]) -> None:
    """Through HAProxy, the next poll after an aborted one gets what it gets
    straight from a worker, never ``c[2010,"Another connection still open"]``."""
    listen, worker = haproxy
    direct = aborted_poll(worker, "abort-direct")
    proxied = aborted_poll(listen, "abort-proxied")
    assert "2010" not in proxied[1], proxied
    assert proxied == direct


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        return out


def test_haproxy_answers_draft76_and_non_get_upgrades_itself(haproxy: tuple[int, int]) -> None:
    """As docs/deployment.md says: HAProxy 2.6 refuses these with its own 400,
    which never reaches fastsockjs (fastsockjs itself answers them otherwise)."""
    listen, worker = haproxy
    draft76 = (b"GET /chat/echo/000/d76/websocket HTTP/1.1\r\nHost: x\r\n"
               b"Upgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://x\r\n"
               b"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
               b"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U")
    # (sockjs-protocol's test_invalidMethod: a POST with the Upgrade headers only.)
    post = (b"POST /chat/echo/000/pst/websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: WebSocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n")
    assert raw_exchange(worker, draft76).startswith(b"HTTP/1.1 101")
    assert raw_exchange(worker, post).startswith(b"HTTP/1.1 405")
    for data in (draft76, post):
        answer = raw_exchange(listen, data)
        assert answer.startswith(b"HTTP/1.1 400"), answer
