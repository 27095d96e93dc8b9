"""The engine's graceful drain and health report (issue 16), on fake exchanges:
a poll arriving while draining gets the close frame, new sessions and sends are
refused with 503, and the health endpoint says ok / drain / down and why."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fastsockjs import Server
from fastsockjs.engine.core import Engine
from fastsockjs.protocol.http import HttpError, Request
from tests.unit.test_engine import FakeExchange, ask, engine_with

CLOSE = b'c[1001,"Server shutting down"]\n'


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def health(engine: Engine, query: str = "") -> FakeExchange:
    exchange = FakeExchange()
    engine.answer_health(Request("GET", "/_health" + query, {"host": "x"}), exchange)
    return exchange


def test_a_poll_between_two_polls_gets_the_close_frame_while_draining(
    loop: asyncio.AbstractEventLoop,
) -> None:
    engine = engine_with(loop, Server(prefix="/echo"))
    assert ask(engine, "POST", "/echo/000/s1/xhr").streamed == [b"o\n"]
    held = ask(engine, "POST", "/echo/000/s2/xhr")  # s2's next poll is held
    loop.run_until_complete(asyncio.sleep(0))
    ask(engine, "POST", "/echo/000/s2/xhr")
    shutdown = loop.create_task(engine.shutdown(timeout=30))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert not shutdown.done() and engine.draining
    assert engine.unsent_closes() == 1  # s1: between two polls
    # s1's next poll arrives while draining: it gets the close frame, not an error.
    assert ask(engine, "POST", "/echo/000/s1/xhr").streamed == [CLOSE]
    assert engine.unsent_closes() == 0
    loop.run_until_complete(asyncio.wait_for(shutdown, 5))  # done well before 30 s
    assert held.ended and engine.live_sessions == 0


def test_new_sessions_and_sends_are_refused_while_draining(
    loop: asyncio.AbstractEventLoop,
) -> None:
    server = Server(prefix="/echo")
    got: list[str] = []
    server.on("connection", lambda conn: conn.on("data", got.append))
    engine = engine_with(loop, server)
    ask(engine, "POST", "/echo/000/s1/xhr")
    loop.run_until_complete(asyncio.sleep(0))
    engine.draining = True
    for method, path, body in (("POST", "/echo/000/s1/xhr_send", b'["lost?"]'),
                               ("POST", "/echo/000/new/xhr", b""),
                               ("GET", "/echo/000/new/eventsource", b"")):
        with pytest.raises(HttpError) as err:
            ask(engine, method, path, body)
        assert err.value.status == 503 and ("Retry-After", "1") in err.value.headers
    assert got == []
    assert engine.mounts[0].stats()["refused"] == {"draining": 3}
    assert ask(engine, "GET", "/echo/info").status == 200  # answers only: still served


def test_health_ok_drain_and_down(loop: asyncio.AbstractEventLoop) -> None:
    engine = engine_with(loop, Server(prefix="/echo"))
    assert (health(engine).status, health(engine).body) == (200, b"ok\n")
    broker = [True, "connected"]
    lag = [True, "ok"]
    engine.add_health_check(lambda: (bool(broker[0]), str(broker[1])), drain=True)
    engine.add_health_check(lambda: (bool(lag[0]), str(lag[1])))
    broker[:] = [False, "cannot reach Redis"]
    assert engine.health().state == "drain"
    answer = health(engine)
    assert answer.status == 503 and answer.body == b"drain: cannot reach Redis\n"
    assert ("Cache-Control", "no-store") in answer.headers
    # What HAProxy asks for: 404, which `http-check disable-on-404` turns into drain.
    assert health(engine, "?drain_status=404").status == 404
    lag[:] = [False, "the event loop lags 2.00 s (bound 1 s)"]  # down wins over drain
    assert health(engine, "?drain_status=404").status == 503
    assert health(engine).body == b"down: the event loop lags 2.00 s (bound 1 s)\n"
    broker[:] = [True, "ok"]
    lag[:] = [True, "ok"]
    engine.draining = True
    assert health(engine).body == b"drain: server shutting down\n"


def test_a_failing_check_reports_its_exception(loop: asyncio.AbstractEventLoop) -> None:
    engine = engine_with(loop, Server(prefix="/echo"))

    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    engine.add_health_check(broken)
    assert engine.health().state == "down" and "boom" in engine.health().reason
