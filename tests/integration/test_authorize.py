"""``Server(authorize=...)`` (sync and async), ``Connection.state`` and the
client-address rule (``forwarded_allow_ips``), on both hosts: the native
Listener and SockJSApp under uvicorn. A refused request gets its status, or
``c[code,reason]`` in its transport's framing, and never makes a session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websocket  # websocket-client

from fastsockjs import Refuse, Server
from fastsockjs.protocol.http import Request
from tests.helpers import TIMEOUT, RawHttp, RawWebSocket, ServerThread, close_code, request

SEEN: list[tuple[str, Any]] = []


def verdict(request: Request) -> Any:
    SEEN.append((request.path, request.remote[0]))
    token = request.param("token")
    if token == "good":
        return {"user": "ann", "from": request.remote[0]}
    if token == "bad":
        return Refuse(code=4001, reason="Bad token")
    if token == "no":
        return False
    return Refuse(status=401, reason="Token needed")


async def slow_verdict(request: Request) -> Any:
    await asyncio.sleep(0.01)
    return verdict(request)


def make_servers() -> list[Server]:
    servers = []
    for prefix, hook in (("/auth", verdict), ("/aauth", slow_verdict)):
        server = Server(prefix=prefix, authorize=hook)

        def greet(conn: Any) -> None:
            conn.state["greeted"] = True
            conn.write(json.dumps({**conn.state, "remote": conn.remote_address}))
            conn.on("data", conn.write)

        server.on("connection", greet)
        servers.append(server)
    return servers


def _native() -> Any:
    return ServerThread(make_servers, "asyncio", forwarded_allow_ips="127.0.0.1").start()


def _asgi() -> Any:
    from fastsockjs.asgi import SockJSApp
    from tests.asgi.support import UvicornThread

    def make() -> tuple[Any, list[Server]]:
        servers = make_servers()
        return SockJSApp(*servers, forwarded_allow_ips="127.0.0.1"), servers

    # uvicorn's own proxy-header handling off: the rule under test is SockJSApp's.
    return UvicornThread(make, "asyncio", ws="websockets-sansio", proxy_headers=False).start()


@pytest.fixture(scope="module", params=["native", "asgi"])
def host(request: pytest.FixtureRequest) -> Iterator[Any]:
    server = _native() if request.param == "native" else _asgi()
    server.kind = request.param
    yield server
    server.stop()


def sessions(host: Any) -> int:
    return int(host.call(lambda: sum(s.stats()["sessions"] for s in host.servers)))


def opened(host: Any) -> int:
    return int(host.call(lambda: sum(s.stats()["opened"] for s in host.servers)))


PREFIXES = ["/auth", "/aauth"]
XFF = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_xhr_polling_allowed_with_state(host: Any, prefix: str) -> None:
    r = request(host.port, "POST", f"{prefix}/000/ok1/xhr?token=good", headers=XFF)
    assert r.text == "o\n"
    r = request(host.port, "POST", f"{prefix}/000/ok1/xhr?token=good", headers=XFF)
    state = json.loads(json.loads(r.text[1:])[0])
    # The trusted proxy (127.0.0.1) named the client: the rightmost entry.
    assert state == {"user": "ann", "from": "203.0.113.9", "greeted": True,
                     "remote": "203.0.113.9"}
    # Polls of an existing session are not asked again.
    before = len(SEEN)
    request(host.port, "POST", f"{prefix}/000/ok1/xhr_send?token=good", '["x"]')
    assert request(host.port, "POST", f"{prefix}/000/ok1/xhr?token=good").text == 'a["x"]\n'
    assert len(SEEN) == before


@pytest.mark.parametrize("prefix", PREFIXES)
def test_refusals_over_http(host: Any, prefix: str) -> None:
    before_sessions, before_opened = sessions(host), opened(host)
    r = request(host.port, "POST", f"{prefix}/000/no1/xhr")
    assert (r.status, r.text) == (401, "Token needed")
    assert request(host.port, "POST", f"{prefix}/000/no2/xhr?token=no").status == 403
    r = request(host.port, "POST", f"{prefix}/000/no3/xhr?token=bad")
    assert (r.status, r.text) == (200, 'c[4001,"Bad token"]\n')
    r = request(host.port, "POST", f"{prefix}/000/no4/xhr_streaming?token=bad")
    assert r.status == 200 and r.text.endswith('\nc[4001,"Bad token"]\n')
    r = request(host.port, "GET", f"{prefix}/000/no5/eventsource?token=bad")
    assert 'data: c[4001,"Bad token"]' in r.text
    r = request(host.port, "GET", f"{prefix}/000/no6/jsonp?c=cb&token=bad")
    assert r.text == '/**/cb("c[4001,\\"Bad token\\"]");\r\n'
    # Nothing was created: no send can reach a refused session.
    assert request(host.port, "POST", f"{prefix}/000/no3/xhr_send", '["x"]').status == 404
    assert (sessions(host), opened(host)) == (before_sessions, before_opened)
    refused = host.call(lambda: host.servers[PREFIXES.index(prefix)].stats()["refused"])
    assert refused.get("unauthorized", 0) >= 6


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sockjs_websocket(host: Any, prefix: str) -> None:
    url = f"ws://127.0.0.1:{host.port}{prefix}/000/ws1/websocket"
    ws = websocket.create_connection(url + "?token=good", timeout=TIMEOUT, header=XFF)
    try:
        assert ws.recv() == "o"
        state = json.loads(json.loads(ws.recv()[1:])[0])
        assert state["user"] == "ann" and state["remote"] == "203.0.113.9"
    finally:
        ws.close()
    before = opened(host)
    ws = websocket.create_connection(url + "?token=bad", timeout=TIMEOUT)
    try:
        assert ws.recv() == 'c[4001,"Bad token"]'
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=TIMEOUT)
    # (SockJSApp answers 401 where the ASGI server offers websocket.http.response.)
    assert refused.value.status_code == 401
    assert opened(host) == before


@pytest.mark.parametrize("prefix", PREFIXES)
def test_raw_websocket(host: Any, prefix: str) -> None:
    before = opened(host)
    ws = RawWebSocket(host.port, f"{prefix}/websocket?token=bad")
    try:
        assert ws.status == 101
        frame = ws.recv_frame()
        assert frame is not None and frame[0] == 8
        assert close_code(frame[1]) == (4001, "Bad token")
    finally:
        ws.close()
    ws = RawWebSocket(host.port, f"{prefix}/websocket?token=good")
    try:
        assert json.loads(ws.recv_text())["user"] == "ann"
    finally:
        ws.close()
    assert opened(host) == before + 1


def test_untrusted_peer_keeps_its_address() -> None:
    """A Listener trusting another proxy ignores the header (the default: no proxy)."""
    for trust in ("10.0.0.1", None):
        server = ServerThread(make_servers, "asyncio", forwarded_allow_ips=trust).start()
        try:
            request(server.port, "POST", "/auth/000/u1/xhr?token=good", headers=XFF)
            r = request(server.port, "POST", "/auth/000/u1/xhr?token=good", headers=XFF)
            assert json.loads(json.loads(r.text[1:])[0])["remote"] == "127.0.0.1"
        finally:
            server.stop()


def test_async_hook_keeps_pipelined_requests_in_order() -> None:
    """A pipelined request after one waiting for an async hook is answered after it."""
    server = ServerThread(make_servers, "asyncio").start()
    try:
        c = RawHttp(server.port)
        c.send(b"POST /aauth/000/p1/xhr?token=no HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
               b"GET /aauth/info HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_head()[0] == 403
        c.read_exact(9)  # "Forbidden"
        assert c.read_head()[0] == 200
        c.close()
    finally:
        server.stop()
