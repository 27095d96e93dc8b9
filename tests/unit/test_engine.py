"""The engine both hosts share (fastsockjs/engine/), on a fake exchange: mounts
and routing, the origin policy, refusals, shutdown, stats, and the transport
registry its tables come from. No sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from fastsockjs import Server
from fastsockjs.asgi import SockJSApp
from fastsockjs.engine.core import Engine
from fastsockjs.metrics import StatsCollector
from fastsockjs.options import TRANSPORTS, make_options
from fastsockjs.protocol.http import HttpError, Request
from fastsockjs.protocol.session import ReadyState
from fastsockjs.transports import ENDPOINT_TRANSPORTS, HANDLERS, ROUTES, enabled_endpoints
from tests.unit.fakes import FakeExchange


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def engine_with(loop: asyncio.AbstractEventLoop, *servers: Server) -> Engine:
    engine = Engine()
    for server in servers:
        engine.mount(server, server.options)
    engine.bind(loop)
    return engine


def ask(engine: Engine, method: str, path: str, body: bytes = b"",
        headers: dict[str, str] | None = None) -> FakeExchange:
    resolved = engine.resolve(method, path)
    assert resolved is not None, path
    mount, found = resolved
    exchange = FakeExchange()
    request = Request(method, path, {"host": "x", **(headers or {})}, body=body)
    engine.answer(mount, request, exchange, found)
    return exchange


def test_the_longest_prefix_owns_a_path(loop: asyncio.AbstractEventLoop) -> None:
    engine = engine_with(loop, Server(prefix="/a"), Server(prefix="/a/b"))
    assert engine.find("/a/b/info")[1] == "/info"  # type: ignore[index]
    assert engine.find("/a/b")[0].prefix == "/a/b"  # type: ignore[index]
    assert engine.find("/a/bc")[0].prefix == "/a"  # type: ignore[index]
    assert engine.find("/ab") is None
    with pytest.raises(ValueError, match="already mounted"):
        engine.mount(Server(prefix="/a"), make_options(prefix="/a"))


def test_resolve_is_find_and_route_remembered(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = engine_with(loop, Server(prefix="/a"), Server(prefix="/a/b"))
    for method, path in [("POST", "/a/b/000/s1/xhr"), ("GET", "/a/info"), ("PUT", "/a/info"),
                         ("GET", "/a/nope"), ("GET", "/a/bc/info")]:
        owner = engine.find(path)
        assert owner is not None
        assert engine.resolve(method, path) == (owner[0], owner[0].route(method, owner[1]))
    assert engine.resolve("GET", "/elsewhere") is None
    # Asked again, the answer comes from the memo: neither find nor route runs.
    monkeypatch.setattr(engine, "find", lambda path: pytest.fail("not remembered"))
    assert engine.resolve("POST", "/a/b/000/s1/xhr")[0].prefix == "/a/b"  # type: ignore[index]
    assert engine.resolve("GET", "/elsewhere") is None
    monkeypatch.undo()
    # A new mount forgets what was remembered: "/c" was nobody's, now it is.
    assert engine.resolve("GET", "/c/info") is None
    engine.mount(Server(prefix="/c"), make_options(prefix="/c"))
    assert engine.resolve("GET", "/c/info")[0].prefix == "/c"  # type: ignore[index]


def test_resolve_remembers_a_bounded_number_of_paths(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastsockjs.engine.core import _MEMO, _MEMO_METHODS

    engine = engine_with(loop, Server(prefix="/echo"))
    finds: list[str] = []
    find = engine.find
    monkeypatch.setattr(engine, "find", lambda path: finds.append(path) or find(path))

    def forgotten(method: str, path: str) -> bool:
        del finds[:]
        engine.resolve(method, path)
        return finds == [path]

    engine.resolve("POST", "/echo/000/first/xhr")
    assert not forgotten("POST", "/echo/000/first/xhr")
    for i in range(_MEMO):  # as many other paths as it keeps: the first is gone
        engine.resolve("POST", f"/echo/000/s{i}/xhr")
    assert forgotten("POST", "/echo/000/first/xhr")
    engine.resolve("GET", "/echo/info")
    for i in range(_MEMO_METHODS):  # and the same for methods
        engine.resolve(f"M{i}", "/echo/info")
    assert forgotten("GET", "/echo/info")


def test_greeting_info_and_unknown_paths(loop: asyncio.AbstractEventLoop) -> None:
    engine = engine_with(loop, Server(prefix="/echo"))
    assert ask(engine, "GET", "/echo").body == b"Welcome to SockJS!\n"
    info = json.loads(ask(engine, "GET", "/echo/info").body)
    assert info["websocket"] is True and info["cookie_needed"] is False
    assert ask(engine, "GET", "/echo/nope").status == 404
    with pytest.raises(HttpError) as err:
        ask(engine, "PUT", "/echo/info")
    assert err.value.status == 405 and ("Allow", "GET, OPTIONS") in err.value.headers


def test_a_poll_opens_a_session_and_a_send_reaches_the_handler(
    loop: asyncio.AbstractEventLoop,
) -> None:
    server = Server(prefix="/echo")
    got: list[Any] = []
    server.on("connection", lambda conn: conn.on("data", got.append))
    engine = engine_with(loop, server)
    poll = ask(engine, "POST", "/echo/000/s1/xhr")
    assert poll.status == 200 and poll.streamed == [b"o\n"] and poll.ended
    loop.run_until_complete(asyncio.sleep(0))  # 'connection' is emitted after the open frame
    sent = ask(engine, "POST", "/echo/000/s1/xhr_send", body=b'["hi", {"n": 1}]')
    assert sent.status == 204
    assert got == ["hi", {"n": 1}]


def test_a_send_to_an_unknown_session_is_refused_and_counted(
    loop: asyncio.AbstractEventLoop,
) -> None:
    engine = engine_with(loop, Server(prefix="/echo"))
    with pytest.raises(HttpError) as err:
        ask(engine, "POST", "/echo/000/none/xhr_send", body=b'["x"]')
    assert err.value.status == 404
    assert engine.mounts[0].stats()["refused"] == {"unknown_session": 1}


def test_the_origin_policy(loop: asyncio.AbstractEventLoop) -> None:
    engine = engine_with(loop, Server(prefix="/e", allowed_origins=["https://ok.test"]))
    ok = {"origin": "https://ok.test"}
    assert ask(engine, "POST", "/e/000/s/xhr", headers=ok).status == 200
    with pytest.raises(HttpError) as err:
        ask(engine, "POST", "/e/000/t/xhr", headers={"origin": "https://evil.test"})
    assert err.value.status == 403
    # No Origin check can protect what a script tag or an iframe loads: refused outright.
    with pytest.raises(HttpError) as err:
        ask(engine, "GET", "/e/iframe.html", headers=ok)
    assert err.value.status == 404
    # Answers only: CORS headers decide.
    assert ask(engine, "GET", "/e/info", headers={"origin": "https://evil.test"}).status == 200
    assert engine.mounts[0].stats()["refused"] == {"origin": 1, "unknown_session": 1}


def test_shutdown_closes_every_session_once(loop: asyncio.AbstractEventLoop) -> None:
    server = Server(prefix="/echo")
    closes: list[str] = []
    server.on("connection", lambda conn: conn.on("close", lambda: closes.append(conn.id)))
    engine = engine_with(loop, server)
    for i in range(3):
        ask(engine, "POST", f"/echo/000/s{i}/xhr")
    loop.run_until_complete(asyncio.sleep(0))
    assert len(engine.open_connections()) == 3
    loop.run_until_complete(engine.shutdown(timeout=0.2))
    assert len(closes) == 3 and len(set(closes)) == 3
    assert engine.live_sessions == 0 and engine.open_connections() == []


def test_the_registry_covers_every_transport_once() -> None:
    named = {t for ts in ENDPOINT_TRANSPORTS.values() for t in ts}
    assert named == set(TRANSPORTS)
    kinds = [spec.kind for spec in ROUTES]
    assert len(kinds) == len(set(kinds)) and set(kinds) == set(HANDLERS)
    options = make_options(disabled_transports=frozenset({"xhr-polling", "jsonp-polling"}))
    on = enabled_endpoints(options)
    assert "xhr" not in on and "jsonp" not in on and "jsonp_send" not in on
    assert "xhr_send" in on  # xhr-streaming, eventsource and htmlfile still use it
    assert {"greeting", "info", "iframe"} <= on


def test_broadcast_takes_what_write_takes(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(prefix="/echo")
    engine = engine_with(loop, server)
    polls = [ask(engine, "POST", f"/echo/000/b{i}/xhr") for i in range(2)]
    loop.run_until_complete(asyncio.sleep(0))
    conns = server.connections()
    assert all(c.ready_state is ReadyState.OPEN for c in conns) and len(conns) == 2
    held = [ask(engine, "POST", f"/echo/000/b{i}/xhr") for i in range(2)]
    assert server.broadcast({"n": 1}, conns) == 2
    loop.run_until_complete(asyncio.sleep(0))
    assert [h.streamed for h in held] == [[b'a["{\\"n\\":1}"]\n']] * 2
    with caplog.at_level(logging.ERROR, "fastsockjs.error"):
        assert server.broadcast({1, 2}, conns) == 0
    assert "broadcast()" in caplog.text
    del polls


def test_stats_and_prometheus_work_the_same_under_asgi() -> None:
    pytest.importorskip("prometheus_client")
    server = Server(prefix="/echo")
    app = SockJSApp(server)
    stats = app.stats()
    assert stats["connections"] == 0 and stats["endpoints"][0]["prefix"] == "/echo"
    for source in (app, server):
        names = {family.name for family in StatsCollector(source, "w0").collect()}
        assert "fastsockjs_sessions" in names and "fastsockjs_opened" in names
