"""transports/eventsource.py on a fake exchange and a real Mount on a fake clock."""

from __future__ import annotations

from fastsockjs.protocol.http import NO_CACHE
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.eventsource import EventSourceReceiver, eventsource
from tests.unit.fakes import FakeExchange, Mounted

ROUTE = Route("eventsource", "000", "s1")


def open_stream(m: Mounted, headers: dict[str, str] | None = None) -> FakeExchange:
    return m.call(eventsource, "GET", "/echo/000/s1/eventsource", headers=headers, route=ROUTE)


def test_the_stream_starts_with_a_blank_line_then_the_open_event() -> None:
    m = Mounted()
    s = open_stream(m)
    assert s.status == 200
    assert s.headers == [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", NO_CACHE),
        ("Access-Control-Allow-Origin", "*"),
        ("Vary", "Origin"),
    ]
    assert s.streamed == [b"\r\n", b"data: o\r\n\r\n"] and not s.ended
    assert m.conns[0].protocol == "eventsource"


def test_messages_heartbeats_and_close_are_events() -> None:
    m = Mounted(heartbeat_delay=10)
    s = open_stream(m)
    m.conns[0].write("hi")
    m.clock.end_turn()
    m.clock.advance(10.1)
    m.conns[0].close()
    assert s.data == (
        b"\r\ndata: o\r\n\r\n"
        b'data: a["hi"]\r\n\r\n'
        b"data: h\r\n\r\n"
        b'data: c[1000,"Normal closure"]\r\n\r\n'
    )
    assert s.ended


def test_percent_is_escaped_for_the_clients_decodeURI() -> None:
    m = Mounted()
    s = open_stream(m)
    m.conns[0].write("100% \r\n")
    m.clock.end_turn()
    # JSON already escapes CR and LF inside the string; '%' needs its own escape.
    assert s.streamed[-1] == b'data: a["100%25 \\r\\n"]\r\n\r\n'


def test_raw_cr_lf_and_nul_in_a_frame_cannot_break_the_event_framing() -> None:
    recv = EventSourceReceiver(FakeExchange(), 1000)
    assert recv.encode("x\r\ny\x00%") == b"data: x%0D%0Ay%00%25\r\n\r\n"


def test_the_stream_ends_after_response_limit_bytes() -> None:
    m = Mounted(response_limit=30)
    s = open_stream(m)
    m.conns[0].write("x" * 20)  # 'data: o..' 11 bytes + 32 bytes >= 30
    m.clock.end_turn()
    assert s.ended and s.streamed[-1] == b'data: a["' + b"x" * 20 + b'"]\r\n\r\n'
    assert m.closed == []  # the session outlives the response
