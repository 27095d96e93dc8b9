"""Native TLS: https and wss on the Listener (both event loops), ALPN, the
handshake deadline, failed handshakes, and the command line's --ssl-* flags."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket  # websocket-client

from fastsockjs import Server
from fastsockjs.cli import testserver as make_testserver
from tests.helpers import TIMEOUT, Proc, ServerThread, TlsFiles, https_request, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls_server(loop_kind: str, tls: TlsFiles) -> Iterator[ServerThread]:
    server = ServerThread(
        lambda: make_testserver("/static/sockjs.min.js"), loop_kind,
        ssl=tls.server_context(), request_timeout=0.5,
    ).start()
    yield server
    server.stop()


def test_https_info_and_alpn(tls_server: ServerThread, tls: TlsFiles) -> None:
    r = https_request(tls_server.port, "GET", "/echo/info", tls.client_context())
    assert r.status == 200 and json.loads(r.body)["websocket"] is True
    raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=TIMEOUT)
    with tls.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert s.version() in ("TLSv1.2", "TLSv1.3")


def test_xhr_polling_over_https(tls_server: ServerThread, tls: TlsFiles) -> None:
    ctx = tls.client_context()
    port = tls_server.port
    assert https_request(port, "POST", "/echo/000/tls1/xhr", ctx).body == b"o\n"
    assert https_request(port, "POST", "/echo/000/tls1/xhr_send", ctx, '["über"]').status == 204
    assert https_request(port, "POST", "/echo/000/tls1/xhr", ctx).text == 'a["über"]\n'


def test_iframe_page_names_no_plain_http(tls_server: ServerThread, tls: TlsFiles) -> None:
    r = https_request(tls_server.port, "GET", "/echo/iframe.html", tls.client_context())
    assert r.status == 200
    assert b"/static/sockjs.min.js" in r.body and b"http:" not in r.body


def test_wss_echo(tls_server: ServerThread, tls: TlsFiles) -> None:
    ws = websocket.create_connection(
        f"wss://127.0.0.1:{tls_server.port}/echo/000/tls2/websocket", timeout=TIMEOUT,
        sslopt={"ca_certs": str(tls.ca)},
    )
    try:
        big = "x" * 100_000  # many TLS records
        ws.send(json.dumps(["hi", big]))
        got = []
        while len(got) < 3:
            frame = ws.recv()
            if frame == "o":
                got.append(frame)
            elif frame.startswith("a"):
                got.extend(json.loads(frame[1:]))
        assert got == ["o", "hi", big]
    finally:
        ws.close()


def test_stalled_handshake_is_dropped_on_the_request_timeout(
    tls_server: ServerThread, tls: TlsFiles
) -> None:
    """request_timeout=0.5: a client that connects and sends nothing, or half a
    ClientHello, is closed as one that never finishes its headers would be."""
    for prefix in (b"", b"\x16\x03\x01\x00\xc8\x01"):
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=TIMEOUT) as s:
            s.sendall(prefix)
            t0 = time.monotonic()
            try:
                assert s.recv(1024) == b""
            except ConnectionResetError:
                pass
            assert time.monotonic() - t0 < 4.0
    # ... and the server still serves.
    assert https_request(tls_server.port, "GET", "/echo/info", tls.client_context()).status == 200


def test_failed_handshakes_never_crash_and_are_logged_at_debug(
    tls_server: ServerThread, tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed handshake is one debug record on ``fastsockjs.tls`` naming the
    peer and the reason; nothing at WARNING or above; the server serves on."""
    caplog.set_level(logging.DEBUG, logger="fastsockjs.tls")
    port = tls_server.port

    def failures() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "fastsockjs.tls"]

    def poke(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(data)
            try:
                s.recv(1024)
            except OSError:
                pass

    # Plain HTTP on the TLS port; a record too long to be TLS; a client that does
    # not trust the CA (it aborts with an alert); a client that leaves at once.
    poke(b"GET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: len(failures()) == 1, TIMEOUT, "the plain-HTTP handshake logged")
    assert failures()[0].startswith("127.0.0.1 - TLS handshake failed: SSLError: ")
    assert "HTTP_REQUEST" in failures()[0] or "http request" in failures()[0]
    poke(b"\x16\x03\x01\xff\xff" + b"\0" * 64)
    wait_for(lambda: len(failures()) == 2, TIMEOUT, "the garbage handshake logged")
    untrusting = ssl.create_default_context()
    with pytest.raises(ssl.SSLError):
        https_request(port, "GET", "/echo/info", untrusting)
    wait_for(lambda: len(failures()) == 3, TIMEOUT, "the untrusting client logged")
    assert "unknown ca" in failures()[2].lower(), failures()
    socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    wait_for(lambda: len(failures()) == 4, TIMEOUT, "the vanished client logged")
    assert failures()[3] == "127.0.0.1 - TLS handshake failed: ConnectionResetError", failures()
    # A good handshake logs nothing.
    assert https_request(port, "GET", "/echo/info", tls.client_context()).status == 200
    assert len(failures()) == 4, failures()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_stalled_handshake_is_logged(
    tls_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="fastsockjs.tls")
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=TIMEOUT) as s:
        try:
            assert s.recv(1024) == b""
        except ConnectionResetError:
            pass
    wait_for(lambda: any("taking longer than 0.5 seconds" in r.getMessage()
                         for r in caplog.records if r.name == "fastsockjs.tls"),
             TIMEOUT, "the stalled handshake logged")


def test_shutdown_ends_handshakes_under_way(loop_kind: str, tls: TlsFiles) -> None:
    """A client still in its TLS handshake (nothing sent, or half a ClientHello) is
    closed by the listener's shutdown, not left to its handshake timeout (30 s): on
    Python 3.12+ the stdlib loop's Server.wait_closed waited for it until then."""
    import asyncio

    st = ServerThread(lambda: make_testserver("/static/sockjs.min.js"), loop_kind,
                      ssl=tls.server_context(), request_timeout=30.0).start()
    clients = []
    try:
        for prefix in (b"", b"\x16\x03\x01\x00\xc8\x01"):
            c = socket.create_connection(("127.0.0.1", st.port), timeout=TIMEOUT)
            c.sendall(prefix)
            clients.append(c)
        # The server has accepted both once a later full request is answered.
        assert https_request(st.port, "GET", "/echo/info", tls.client_context()).status == 200
        listener = st.listener
        assert listener is not None
        done = asyncio.run_coroutine_threadsafe(listener.shutdown(timeout=1.0), st.loop)
        done.result(TIMEOUT)  # (within 5 s, where a wait for the handshakes takes 30)
        for c in clients:
            try:
                assert c.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        for c in clients:
            c.close()
        st.stop()


def test_listen_ssl_per_socket(tls: TlsFiles) -> None:
    """``listen(ssl=...)`` on a Listener made without one."""
    import asyncio

    from fastsockjs import Listener

    async def main() -> tuple[int, bytes]:
        listener = Listener()
        Server(prefix="/echo").install_handlers(listener)
        await listener.listen("127.0.0.1", 0, ssl=tls.server_context())
        try:
            loop = asyncio.get_running_loop()
            r = await loop.run_in_executor(
                None, https_request, listener.port, "GET", "/echo", tls.client_context()
            )
            return r.status, r.body
        finally:
            await listener.close()

    assert asyncio.run(main()) == (200, b"Welcome to SockJS!\n")


def test_cli_ssl_flags(tls: TlsFiles, tmp_path: Path) -> None:
    """`fastsockjs echo --ssl-certfile ... --ssl-keyfile ...` serves https; a
    bad key is refused before anything listens."""
    from tests.deploy.cluster import free_port

    port = free_port()
    proc = Proc("echo-tls", [sys.executable, "-m", "fastsockjs", "echo", "--port", str(port),
                             *tls.cli_args()], tmp_path / "echo.log", cwd=ROOT)
    try:
        r = wait_for(lambda: https_request(port, "GET", "/echo/info", tls.client_context()),
                     20, f"https echo\n{proc.log_text()}")
        assert r.status == 200
        assert "listening on https://127.0.0.1" in proc.log_text()
    finally:
        proc.stop()
    bad = subprocess.run(
        [sys.executable, "-m", "fastsockjs", "echo", "--port", "0", "--ssl-certfile",
         str(tls.certfile), "--ssl-keyfile", str(tls.ca)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert bad.returncode != 0 and "--ssl-keyfile" in bad.stderr
    lone = subprocess.run(
        [sys.executable, "-m", "fastsockjs", "echo", "--port", "0", "--ssl-keyfile",
         str(tls.keyfile)], capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert lone.returncode != 0 and "need --ssl-certfile" in lone.stderr
