"""The HTTP request path: a closed connection leaves nothing behind, and the
request target and Host are checked as RFC 9112 3.2 says.

Retention tests run with the garbage collector off: whatever a closed
connection held must be freed by reference counting alone, at once, not by a
timer firing (formerly 30 s later) or a cycle collection."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fastsockjs import Listener
from fastsockjs.apps import echo
from tests.helpers import (
    TIMEOUT,
    RawHttp,
    RawWebSocket,
    ServerThread,
    TlsFiles,
    https_request,
    request,
    wait_for,
)

pytestmark = pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])


class RecordingListener(Listener):
    """Keeps a weak reference to every connection's protocol object."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refs: list[weakref.ref[Any]] = []

    def protocol_factory(self) -> Any:
        proto = super().protocol_factory()
        self.refs.append(weakref.ref(proto))
        return proto


@pytest.fixture
def server(loop_kind: str) -> Iterator[tuple[ServerThread, list[weakref.ref[Any]]]]:
    st = ServerThread(lambda: [echo(prefix="/echo", disconnect_delay=0.2)], loop_kind,
                      listener_cls=RecordingListener, request_timeout=0.5).start()
    assert isinstance(st.listener, RecordingListener)
    try:
        yield st, st.listener.refs
    finally:
        st.stop()


def _closed_protocols_are_freed(st: ServerThread, refs: list[weakref.ref[Any]],
                                scenario: Callable[[int], None]) -> None:
    listener = st.listener
    assert listener is not None
    gc.collect()
    gc.disable()
    try:
        scenario(st.port)
        assert refs, "no connection was recorded"
        # Wait only for the server to see the sockets close (no timer is involved).
        wait_for(lambda: st.call(lambda: len(listener.connections)) == 0, 5.0,
                 "connections to close")
        alive = st.call(lambda: sum(1 for r in refs if r() is not None))
        assert alive == 0, f"{alive} of {len(refs)} closed connections still held"
    finally:
        gc.enable()


def _raw_close(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        s.settimeout(TIMEOUT)
        while s.recv(65536):
            pass


def test_tls_connections_leave_nothing_behind(loop_kind: str, tls: TlsFiles) -> None:
    """Over TLS (the loop's TLS protocol, built by fastsockjs.aio.tls): served
    requests, failed handshakes and a stalled one free their protocols at once."""
    st = ServerThread(lambda: [echo(prefix="/echo", disconnect_delay=0.2)], loop_kind,
                      listener_cls=RecordingListener, request_timeout=0.5,
                      ssl=tls.server_context()).start()
    assert isinstance(st.listener, RecordingListener)

    def scenario(port: int) -> None:
        for _ in range(3):
            assert https_request(port, "GET", "/echo/info", tls.client_context()).status == 200
        _raw_close(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP: refused
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        _raw_close(port, b"")  # stalls: dropped on the handshake timeout
        # Every protocol made (one per connection) has been let go of.
        wait_for(lambda: st.call(lambda: sum(1 for r in st.listener.refs if r() is not None))
                 == 0, 5.0, "the TLS connections' protocols freed")

    try:
        _closed_protocols_are_freed(st, st.listener.refs, scenario)
        assert len(st.listener.refs) == 6
    finally:
        st.stop()


def test_plain_requests_with_many_headers(server: Any) -> None:
    headers = "".join(f"X-Pad-{i}: {'v' * 20}\r\n" for i in range(500))
    data = f"GET /echo/info HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode()
    _closed_protocols_are_freed(*server, lambda port: [_raw_close(port, data) for _ in range(30)])


def test_keep_alive_connections_the_client_drops(server: Any) -> None:
    def scenario(port: int) -> None:
        for _ in range(20):
            c = RawHttp(port)
            status, _ = c.request("GET", "/echo/info")
            assert status == 200
            c.close()  # idle keep-alive connection, dropped by the client

    _closed_protocols_are_freed(*server, scenario)


def test_error_answers_408_413_400(server: Any) -> None:
    def scenario(port: int) -> None:
        _raw_close(port, b"GET /echo/info HTTP/1.1\r\nHost: x\r\n")  # stalls: 408
        _raw_close(port, b"POST /echo/abc/def/xhr_send HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 99999999999\r\n\r\n")  # 413
        _raw_close(port, b"GET /echo/info HTTP/1.1\r\n\r\n")  # no Host: 400, then closed
        _raw_close(port, b"\x00\x01garbage\r\n\r\n")  # unparsable

    _closed_protocols_are_freed(*server, scenario)


def test_polling_streaming_and_websocket_sessions(server: Any) -> None:
    def scenario(port: int) -> None:
        for i in range(5):
            r = request(port, "POST", f"/echo/000/p{i}/xhr")
            assert r.text == "o\n"
            c = RawHttp(port)
            status, _ = c.request("POST", f"/echo/000/s{i}/xhr_streaming")
            assert status == 200
            c.read_chunk()  # prelude
            c.close()  # the client goes away mid-stream
            ws = RawWebSocket(port, "/echo/websocket")
            ws.send_text("hi")
            assert ws.recv_text() == "hi"
            ws.close()

    _closed_protocols_are_freed(*server, scenario)


# -- Host and the request target ----------------------------------------------------------------

def _status(port: int, head: bytes) -> int:
    c = RawHttp(port)
    try:
        c.send(head)
        return c.read_head()[0]
    finally:
        c.close()


def test_http11_without_host_is_refused(server: Any) -> None:
    st, _ = server
    assert _status(st.port, b"GET /echo/info HTTP/1.1\r\n\r\n") == 400


def test_two_host_headers_are_refused(server: Any) -> None:
    st, _ = server
    assert _status(st.port, b"GET /echo/info HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400
    assert _status(st.port, b"GET /echo/info HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n") == 400


def test_http10_without_host_is_served(server: Any) -> None:
    st, _ = server
    assert _status(st.port, b"GET /echo/info HTTP/1.0\r\n\r\n") == 200


def test_absolute_form_targets_are_routed_by_their_path(server: Any) -> None:
    st, _ = server
    c = RawHttp(st.port)
    try:
        c.send(b"GET http://example.test:8080/echo/info?t=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        status, headers = c.read_head()
        assert status == 200
        body = c.read_exact(int(headers["content-length"]))
        assert b"websocket" in body
        # The connection is still usable, in origin form too.
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = c.read_head()
        assert status == 200
        assert c.read_exact(int(headers["content-length"])) == b"Welcome to SockJS!\n"
    finally:
        c.close()


def test_absolute_form_with_an_other_scheme_is_refused(server: Any) -> None:
    st, _ = server
    assert _status(st.port, b"GET ftp://x/echo/info HTTP/1.1\r\nHost: x\r\n\r\n") == 400
