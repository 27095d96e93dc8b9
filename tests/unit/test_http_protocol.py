"""aio/http.py's HttpProtocol and Exchange on a fake asyncio transport and a fake
listener whose timer heap runs on a fake clock: keep-alive and pipelining,
request deadlines, size limits, lingering close, streamed bodies, the Host and
request-target checks, and what a lost connection lets go of. No sockets.

Every test runs on the connection as written (``aio/_connection_py.py``) and
compiled (``aio._connection``), each with three head parsers."""

from __future__ import annotations

import gc
import logging
import re
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fastsockjs import _http_py
from fastsockjs.aio import _connection_py
from fastsockjs.aio.http import LINGER_TIMEOUT, Exchange, HttpProtocol
from fastsockjs.engine.core import Engine
from fastsockjs.heads import ParseRequest
from fastsockjs.protocol.http import HttpError, Request
from fastsockjs.protocol.timers import TimerQueue
from tests.helpers import compiled_connection, compiled_http
from tests.unit.fakes import FakeClock, FakeTransport

Handler = Callable[[Request, Exchange], None]


class FakeListener:
    """aio/http.py's ConnectionOwner: limits, counters and a dispatch that
    records each request and hands it to the test's handler."""

    max_body = 1000
    max_request_line = 200
    max_header_bytes = 600
    request_timeout = 5.0
    keepalive_timeout = 20.0
    forwarded = None  # no trusted proxy: the peer's address is the client's

    def __init__(self, clock: FakeClock, handler: Handler) -> None:
        self.engine = Engine()
        self.connections: set[HttpProtocol] = set()
        self.bytes_in = 0
        self.bytes_out = 0
        self.clock = clock
        self.handler = handler
        self.requests: list[Request] = []

    @property
    def loop(self) -> Any:
        return self.clock

    @property
    def timers(self) -> TimerQueue:
        return self.clock.timers

    def dispatch(self, request: Request, exchange: Exchange) -> None:
        self.requests.append(request)
        self.handler(request, exchange)


def echo_path(request: Request, exchange: Exchange) -> None:
    exchange.respond(200, [("Content-Type", "text/plain")], request.path.encode())


class Conn:
    """One HttpProtocol on a FakeTransport, with its listener and clock."""

    #: The head parser and the connection module every test here runs with (the
    #: fixtures below set them).
    parse: ParseRequest | None = None
    connection: Any = _connection_py

    def __init__(self, handler: Handler = echo_path) -> None:
        self.clock = FakeClock()
        self.listener = FakeListener(self.clock, handler)
        self.transport = FakeTransport()
        self.proto: HttpProtocol = self.connection.HttpProtocol(self.listener, self.parse)
        self.proto.connection_made(self.transport)

    def feed(self, data: bytes) -> bytes:
        """Bytes in; the bytes written since the last feed out."""
        self.proto.data_received(data)
        return self.transport.take()


@pytest.fixture(autouse=True, params=["httptools", "twin", "compiled"])
def head_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test three times: httptools' callbacks only, and the fast head
    parser (its pure-Python twin, then the compiled one) in front of them."""
    parse: ParseRequest | None = None
    if request.param == "twin":
        parse = _http_py.parse_request
    elif request.param == "compiled":
        parse = compiled_http.require().parse_request
    monkeypatch.setattr(Conn, "parse", staticmethod(parse) if parse else None)
    return str(request.param)


@pytest.fixture(autouse=True, params=["written", "compiled"])
def connection(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    module = _connection_py if request.param == "written" else compiled_connection.require()
    monkeypatch.setattr(Conn, "connection", module)
    return str(request.param)


def get(path: str = "/", version: str = "1.1", extra: str = "") -> bytes:
    host = "Host: h\r\n" if version == "1.1" else ""
    return f"GET {path} HTTP/{version}\r\n{host}{extra}\r\n".encode()


def responses(data: bytes) -> list[bytes]:
    """Status lines in ``data``, in order."""
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", data)


@pytest.fixture
def conn() -> Iterator[Conn]:
    c = Conn()
    yield c
    if not c.transport.closed:
        c.proto.connection_lost(None)


# -- keep-alive and pipelining ---------------------------------------------------------
def test_keep_alive_answers_one_request_after_another(conn: Conn) -> None:
    out = conn.feed(get("/a"))
    assert out == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 2\r\n\r\n/a")
    out2 = conn.feed(get("/bb"))
    assert out2.endswith(b"Content-Length: 3\r\n\r\n/bb")
    assert not conn.transport.closed and not conn.transport.eof
    assert [r.path for r in conn.listener.requests] == ["/a", "/bb"]
    # Socket bytes both ways, counted for stats().
    assert conn.listener.bytes_out == len(out) + len(out2)
    assert conn.listener.bytes_in == len(get("/a")) + len(get("/bb"))


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(conn: Conn) -> None:
    conn.feed(get())
    conn.clock.advance(FakeListener.keepalive_timeout - 0.1)
    assert not conn.transport.closed
    conn.clock.advance(0.2)
    assert conn.transport.closed


def test_http_1_0_keep_alive_is_said_and_kept() -> None:
    c = Conn()
    out = c.feed(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert b"Connection: keep-alive\r\n" in out and not c.transport.eof
    out = c.feed(b"GET /y HTTP/1.0\r\n\r\n")  # no keep-alive asked: answered, then closed
    assert b"Connection: close\r\n" in out and out.endswith(b"/y") and c.transport.eof


def test_pipelined_requests_are_answered_in_order() -> None:
    held: list[Exchange] = []

    def handler(request: Request, exchange: Exchange) -> None:
        if request.path == "/slow":
            held.append(exchange)  # answered later
        else:
            echo_path(request, exchange)

    c = Conn(handler)
    assert c.feed(get("/slow") + get("/fast1") + get("/fast2")) == b""
    assert [r.path for r in c.listener.requests] == ["/slow"]  # the others wait their turn
    held[0].respond(200, [], b"slow")
    out = c.transport.take()
    assert out.index(b"slow") < out.index(b"/fast1") < out.index(b"/fast2")
    assert len(responses(out)) == 3
    assert [r.path for r in c.listener.requests] == ["/slow", "/fast1", "/fast2"]


def test_a_long_pipeline_pauses_reading_until_it_drains() -> None:
    held: list[Exchange] = []

    def handler(request: Request, exchange: Exchange) -> None:
        if request.path == "/hold":
            held.append(exchange)
        else:
            echo_path(request, exchange)

    c = Conn(handler)
    c.feed(get("/hold") + get("/n") * 17)
    assert not c.transport.reading
    held[0].respond(200, [], b"")
    assert c.transport.reading
    assert len(responses(c.transport.take())) == 18


# -- deadlines and limits --------------------------------------------------------------
def test_a_stalled_request_gets_408_when_its_deadline_passes(conn: Conn) -> None:
    assert conn.feed(b"GET / HTTP/1.1\r\nHost: h\r\n") == b""  # the head never ends
    conn.clock.advance(FakeListener.request_timeout - 0.1)
    assert conn.transport.take() == b""
    conn.clock.advance(0.2)
    out = conn.transport.take()
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close\r\n" in out and out.endswith(b"Request Timeout")
    assert conn.listener.engine.http_errors == {408: 1}
    assert conn.transport.eof and not conn.transport.closed  # lingering


def test_the_request_deadline_runs_from_the_first_byte_not_per_byte(conn: Conn) -> None:
    conn.feed(get())  # answered; now idle
    conn.feed(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
    for _ in range(4):  # a slowloris dribbling bytes does not move the deadline
        conn.clock.advance(1.0)
        conn.feed(b"z")
    conn.clock.advance(1.1)
    assert responses(conn.transport.take()) == [b"HTTP/1.1 408 Request Timeout"]


def test_nothing_after_a_request_that_closes_the_connection_is_dispatched(conn: Conn) -> None:
    out = conn.feed(get("/last", extra="Connection: close\r\n") + get("/never"))
    assert responses(out) == [b"HTTP/1.1 200 OK"] and out.endswith(b"/last")
    assert [r.path for r in conn.listener.requests] == ["/last"]
    assert conn.transport.eof  # half-closed, draining


def test_a_bare_lf_head_is_refused_at_once_not_after_the_request_timeout(conn: Conn) -> None:
    out = conn.feed(b"GET / HTTP/1.1\nHost: h\n\n")
    assert responses(out) == [b"HTTP/1.1 400 Bad Request"]


def test_a_head_and_body_trickled_byte_by_byte_read_as_one_request(conn: Conn) -> None:
    raw = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" + get("/next")
    out = b"".join(conn.feed(raw[i : i + 1]) for i in range(len(raw)))
    assert responses(out) == [b"HTTP/1.1 200 OK"] * 2
    assert [(r.path, r.body) for r in conn.listener.requests] == [("/p", b"hello"), ("/next", b"")]


def test_a_body_in_pieces_is_joined(conn: Conn) -> None:
    conn.feed(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 900\r\n\r\n" + b"a" * 300)
    conn.feed(b"b" * 300)
    assert conn.listener.requests == []
    conn.feed(b"c" * 300 + get("/after"))
    assert [r.body for r in conn.listener.requests] == [b"a" * 300 + b"b" * 300 + b"c" * 300, b""]


def test_a_request_the_fast_parser_does_not_take_hands_the_connection_to_httptools(
    conn: Conn,
) -> None:
    chunked = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    out = conn.feed(get("/1") + get("/2") + chunked + get("/3"))
    assert responses(out) == [b"HTTP/1.1 200 OK"] * 4
    assert [(r.path, r.body) for r in conn.listener.requests] == [
        ("/1", b""), ("/2", b""), ("/c", b"abc"), ("/3", b""),
    ]
    out = conn.feed(get("/4"))  # and later requests on the connection still read
    assert responses(out) == [b"HTTP/1.1 200 OK"]


def test_an_endless_head_is_refused_once_it_passes_the_header_limit(conn: Conn) -> None:
    conn.feed(b"GET / HTTP/1.1\r\nHost: h\r\n")
    out = b""
    for _ in range(20):  # 20 x 50 bytes: past max_header_bytes (600), never ending
        out += conn.feed(b"X-Pad: " + b"p" * 41 + b"\r\n")
    assert responses(out) == [b"HTTP/1.1 431 Request Header Fields Too Large"]
    assert conn.listener.requests == []


def test_a_body_over_max_body_by_content_length_gets_413_and_close(conn: Conn) -> None:
    out = conn.feed(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001)
    assert responses(out) == [b"HTTP/1.1 413 Request Entity Too Large"]
    assert b"Connection: close\r\n" in out and out.endswith(b"Payload Too Large")
    assert conn.listener.requests == []  # never dispatched
    assert conn.transport.eof


def test_a_chunked_body_over_max_body_gets_413(conn: Conn) -> None:
    chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
    out = conn.feed(b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + chunk * 2 + b"0\r\n\r\n")
    assert responses(out) == [b"HTTP/1.1 413 Request Entity Too Large"]
    assert conn.listener.requests == []


def test_a_body_within_max_body_reaches_the_handler(conn: Conn) -> None:
    conn.feed(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + b"z" * 1000)
    assert conn.listener.requests[0].body == b"z" * 1000


def test_a_long_request_line_gets_414(conn: Conn) -> None:
    out = conn.feed(get("/" + "a" * 200))
    assert out.startswith(b"HTTP/1.1 414 Request-URI Too Long\r\n") and conn.transport.eof
    assert conn.listener.requests == []


def test_a_large_header_block_gets_431(conn: Conn) -> None:
    out = conn.feed(get(extra="X-Big: " + "b" * 600 + "\r\n"))
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert conn.listener.engine.http_errors == {431: 1}


def test_garbage_gets_400(conn: Conn) -> None:
    out = conn.feed(b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")


# -- lingering close ---------------------------------------------------------------------
def test_an_error_close_half_closes_drains_then_closes(conn: Conn) -> None:
    conn.feed(b"NOT HTTP\r\n\r\n")
    assert conn.transport.eof and not conn.transport.closed
    # What the client still sends is read and dropped, never parsed or dispatched.
    assert conn.feed(get("/late")) == b""
    assert conn.listener.requests == []
    conn.clock.advance(LINGER_TIMEOUT - 0.1)
    assert not conn.transport.closed
    conn.clock.advance(0.2)
    assert conn.transport.closed


def test_a_transport_that_cannot_half_close_is_closed_at_once(conn: Conn) -> None:
    conn.transport.eof_error = NotImplementedError()
    conn.feed(b"NOT HTTP\r\n\r\n")
    assert conn.transport.closed and conn.clock.pending_later == []


# -- handler errors ----------------------------------------------------------------------
@pytest.mark.parametrize(("status", "keeps_alive"), [(404, True), (405, True), (500, False)])
def test_an_http_error_from_the_handler_is_answered(status: int, keeps_alive: bool) -> None:
    def handler(request: Request, exchange: Exchange) -> None:
        raise HttpError(status, "nope", [("Allow", "GET")] if status == 405 else [])

    c = Conn(handler)
    out = c.feed(get())
    assert responses(out)[0].startswith(b"HTTP/1.1 %d " % status)
    assert (b"Connection: close\r\n" not in out) is keeps_alive
    assert c.transport.eof is not keeps_alive
    if status == 405:
        assert b"Allow: GET\r\n" in out and b"Content-Length: 0\r\n" in out
    else:
        assert out.endswith(b"nope")
    assert c.listener.engine.http_errors == {status: 1}


def test_a_failing_handler_gets_500_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: Request, exchange: Exchange) -> None:
        raise RuntimeError("bug")

    c = Conn(handler)
    with caplog.at_level(logging.ERROR, "fastsockjs.error"):
        out = c.feed(get("/boom"))
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert "error answering GET /boom" in caplog.text and "RuntimeError: bug" in caplog.text


# -- streamed bodies -----------------------------------------------------------------------
def streamer(parts: list[bytes], last: bytes | None, sinks: list[Exchange]) -> Handler:
    def handler(request: Request, exchange: Exchange) -> None:
        if request.path != "/stream":
            echo_path(request, exchange)
            return
        sink = exchange.stream(200, [("Content-Type", "text/x")])
        for part in parts:
            sink.write(part)
        sinks.append(sink)
        if last is not None:
            sink.end(last)

    return handler


def test_http_1_1_streams_chunked_and_keeps_the_connection() -> None:
    c = Conn(streamer([b"abc", b"de"], b"f", []))
    out = c.feed(get("/stream"))
    assert out == (b"HTTP/1.1 200 OK\r\nContent-Type: text/x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n")
    assert c.feed(get("/next")).endswith(b"/next")


def test_the_head_waits_for_the_first_write_and_leaves_with_it() -> None:
    sinks: list[Exchange] = []
    c = Conn(streamer([], b"", sinks))
    sinks_end = c.feed(get("/stream"))
    # Ended with nothing: the head and the last chunk leave in one write.
    assert c.transport.written == [] and sinks_end.endswith(b"\r\n\r\n0\r\n\r\n")
    assert sinks_end.count(b"HTTP/1.1 200 OK") == 1


def test_http_1_0_streams_close_delimited() -> None:
    sinks: list[Exchange] = []
    c = Conn(streamer([b"abc", b"de"], None, sinks))
    out = c.feed(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Type: text/x\r\nConnection: close\r\n\r\nabcde"
    sinks[0].end(b"f")
    assert c.transport.take() == b"f"
    assert c.transport.eof  # the end of the body is the end of the connection


def test_an_error_after_the_head_ends_the_connection_without_a_status_line() -> None:
    sinks: list[Exchange] = []
    c = Conn(streamer([b"abc"], None, sinks))
    c.feed(get("/stream"))
    sinks[0].error(HttpError(500, "late"))
    assert c.transport.take() == b"" and c.transport.eof
    sinks[0].write(b"more")  # after the end: dropped
    assert c.transport.take() == b""


def test_flow_control_reaches_the_stream_owner() -> None:
    sinks: list[Exchange] = []
    c = Conn(streamer([b"abc"], None, sinks))
    c.feed(get("/stream"))
    woken: list[str] = []

    class Owner:
        def abort(self) -> None:
            woken.append("abort")

        def writable_again(self) -> None:
            woken.append("writable")

    sinks[0].attach(Owner())
    c.transport.buffer_size = 70000
    c.proto.pause_writing()
    assert sinks[0].paused and sinks[0].buffered == 70000
    c.proto.resume_writing()
    assert not sinks[0].paused and woken == ["writable"]


# -- Host and the request target -------------------------------------------------------------
@pytest.mark.parametrize(("head", "message"), [
    (b"GET / HTTP/1.1\r\n\r\n", b"missing Host header"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"more than one Host header"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", b"invalid Host header"),
    (b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", b"invalid request target"),
    (b"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", b"invalid request target"),
])
def test_invalid_host_or_target_gets_400_and_close(conn: Conn, head: bytes, message: bytes) -> None:
    out = conn.feed(head + get("/after"))
    assert responses(out) == [b"HTTP/1.1 400 Bad Request"]  # the pipelined one is not answered
    assert out.endswith(b"Bad Request: " + message) and conn.transport.eof
    assert conn.listener.requests == []


def test_http_1_0_needs_no_host(conn: Conn) -> None:
    assert conn.feed(b"GET /old HTTP/1.0\r\n\r\n").endswith(b"/old")


def test_an_absolute_form_target_routes_on_its_path_and_its_authority_is_the_host(
    conn: Conn,
) -> None:
    out = conn.feed(b"GET http://example.com:8080/echo/info?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert out.endswith(b"/echo/info")
    request = conn.listener.requests[0]
    assert request.url == "/echo/info?x=1" and request.headers["host"] == "example.com:8080"


def test_repeated_headers_fold_into_one(conn: Conn) -> None:
    conn.feed(get(extra="X-A: 1\r\nX-A: 2\r\n"))
    assert conn.listener.requests[0].headers["x-a"] == "1, 2"


# -- connection_lost ---------------------------------------------------------------------------
def test_connection_lost_aborts_the_active_stream_and_lets_go_of_everything() -> None:
    sinks: list[Exchange] = []
    c = Conn(streamer([b"abc"], None, sinks))
    c.feed(get("/stream") + get("/queued"))
    aborted: list[bool] = []

    class Owner:
        def abort(self) -> None:
            aborted.append(True)

        def writable_again(self) -> None:
            pass

    sinks[0].attach(Owner())
    proto = c.proto
    assert c.listener.connections == {proto} and c.clock.timers.live == 1
    proto.connection_lost(None)
    assert aborted == [True]
    assert c.listener.connections == set()
    assert c.clock.timers.live == 0  # its deadline is gone from the heap
    assert proto.parser is None and not proto.busy
    assert [r.path for r in c.listener.requests] == ["/stream"]  # the queued one is dropped
    # Nothing else refers to it: freed by reference counting alone.
    ref = weakref.ref(proto)
    sinks.clear()
    del proto
    c.proto = None  # type: ignore[assignment]
    gc.disable()
    try:
        del Owner
        assert ref() is None
    finally:
        gc.enable()


def test_connection_lost_while_lingering_cancels_the_linger_timer(conn: Conn) -> None:
    conn.feed(b"NOT HTTP\r\n\r\n")
    assert len(conn.clock.pending_later) == 1
    conn.proto.connection_lost(None)
    assert conn.clock.pending_later == []
    conn.clock.advance(LINGER_TIMEOUT + 1)
    assert not conn.transport.closed  # the transport was already gone; nothing touched it


def test_close_if_idle_closes_only_an_idle_connection() -> None:
    held: list[Exchange] = []
    c = Conn(lambda request, exchange: held.append(exchange))
    c.feed(get())
    c.proto.close_if_idle()
    assert not c.transport.closed and c.proto.busy
    held[0].respond(204, [])
    c.proto.close_if_idle()
    assert c.transport.closed


# -- bytes after an Upgrade request ---------------------------------------------------------
UPGRADE_H2C = b"GET /stream HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


def test_bytes_after_a_queued_upgrade_request_are_bounded_by_max_body() -> None:
    held: list[Exchange] = []
    c = Conn(lambda request, exchange: held.append(exchange))
    c.feed(get("/first") + UPGRADE_H2C)  # the upgrade waits behind /first
    c.feed(b"x" * FakeListener.max_body)  # held for it (a WebSocket's first frames would be)
    assert not c.transport.eof
    c.feed(b"x")  # one more than max_body: the connection is given up
    assert c.transport.eof
    assert [r.path for r in c.listener.requests] == ["/first"]


def test_bytes_after_an_upgrade_answered_without_upgrading_are_dropped() -> None:
    sinks: list[Exchange] = []
    c = Conn(streamer([b"abc"], None, sinks))
    c.feed(UPGRADE_H2C)
    assert sinks  # answered by a long-lived stream
    c.transport.take()
    for _ in range(10):
        assert c.feed(get("/smuggled") + b"x" * FakeListener.max_body) == b""
    assert not c.transport.eof  # dropped, never parsed, and the stream goes on
    assert [r.path for r in c.listener.requests] == ["/stream"]


def test_bytes_after_a_refused_upgrade_are_dropped() -> None:
    def refuse(request: Request, exchange: Exchange) -> None:
        raise HttpError(404, "no")

    c = Conn(refuse)
    out = c.feed(UPGRADE_H2C + get("/smuggled"))
    assert responses(out) == [b"HTTP/1.1 404 Not Found"]
    assert c.feed(b"y" * 5000) == b""
    assert [r.path for r in c.listener.requests] == ["/stream"]
