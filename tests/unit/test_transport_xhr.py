"""transports/xhr.py: xhr polling, xhr streaming and xhr_send, on a fake exchange and
a real Mount on a fake clock; the exact bytes and headers each answer carries."""

from __future__ import annotations

import pytest

from fastsockjs.protocol.http import APPLICATION_JS, NO_CACHE, TEXT_PLAIN, HttpError
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.xhr import PRELUDE, xhr_polling, xhr_send, xhr_streaming
from tests.unit.fakes import FakeExchange, Mounted

POLL = Route("xhr", "000", "s1")
STREAM = Route("xhr_streaming", "000", "s1")
SEND = Route("xhr_send", "000", "s1")
CORS_ANY = [("Access-Control-Allow-Origin", "*"), ("Vary", "Origin")]


def poll(m: Mounted, headers: dict[str, str] | None = None) -> FakeExchange:
    return m.call(xhr_polling, "POST", "/echo/000/s1/xhr", headers=headers, route=POLL)


def send(m: Mounted, body: bytes, headers: dict[str, str] | None = None) -> FakeExchange:
    return m.call(xhr_send, "POST", "/echo/000/s1/xhr_send", body, headers, route=SEND)


# -- polling -------------------------------------------------------------------------------
def test_the_first_poll_opens_the_session_with_one_frame() -> None:
    m = Mounted()
    first = poll(m)
    assert first.status == 200
    assert first.headers == [("Content-Type", APPLICATION_JS), ("Cache-Control", NO_CACHE),
                             *CORS_ANY]
    assert first.streamed == [b"o\n"] and first.ended
    assert len(m.conns) == 1 and m.conns[0].protocol == "xhr-polling"
    assert m.conns[0].remote_address == "10.0.0.1"


def test_a_held_poll_carries_what_one_turn_wrote_as_one_frame() -> None:
    m = Mounted()
    poll(m)
    held = poll(m)
    assert held.streamed == [] and not held.ended
    m.conns[0].write("a")
    m.conns[0].write({"b": 1})
    m.clock.end_turn()
    assert held.streamed == [b'a["a","{\\"b\\":1}"]\n'] and held.ended


def test_messages_written_between_polls_wait_for_the_next() -> None:
    m = Mounted()
    poll(m)
    m.conns[0].write("x")
    m.clock.end_turn()
    assert poll(m).streamed == [b'a["x"]\n']


def test_a_second_concurrent_poll_is_refused_with_2010() -> None:
    m = Mounted()
    poll(m)
    held = poll(m)
    second = poll(m)
    assert second.streamed == [b'c[2010,"Another connection still open"]\n'] and second.ended
    assert not held.ended


def test_a_closed_session_answers_its_close_frame() -> None:
    m = Mounted()
    poll(m)
    held = poll(m)
    m.conns[0].close(3000, "Go away!")
    assert held.streamed == [b'c[3000,"Go away!"]\n']
    assert poll(m).streamed == [b'c[3000,"Go away!"]\n']


def test_the_client_aborting_a_held_poll_closes_the_session() -> None:
    m = Mounted()
    poll(m)
    held = poll(m)
    held.owner.abort()  # the host tells the receiver the client went away
    m.clock.end_turn()
    assert m.closed == [m.conns[0].id]
    assert poll(m).streamed == [b"o\n"]  # a new session under the same id


def test_a_session_nobody_polls_expires_after_the_disconnect_delay() -> None:
    m = Mounted(disconnect_delay=5)
    poll(m)
    m.clock.advance(4.9)
    assert m.closed == []
    m.clock.advance(0.2)
    assert m.closed == [m.conns[0].id] and m.mount.session("s1") is None


def test_cors_echoes_the_origin_and_the_asked_headers() -> None:
    m = Mounted()
    first = poll(m, {"origin": "https://a.test", "access-control-request-headers": "X-Y"})
    assert first.headers[2:] == [
        ("Access-Control-Allow-Origin", "https://a.test"),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Headers", "X-Y"),
    ]


def test_an_origin_not_allowed_gets_no_cors_headers() -> None:
    m = Mounted(allowed_origins=["https://ok.test"])
    first = poll(m, {"origin": "https://evil.test"})
    assert first.headers == [("Content-Type", APPLICATION_JS), ("Cache-Control", NO_CACHE)]


@pytest.mark.parametrize(("cookie", "echoed"), [
    (None, "JSESSIONID=dummy; path=/"),
    ("JSESSIONID=abc123", "JSESSIONID=abc123; path=/"),
    ("a=1; JSESSIONID=x y", "JSESSIONID=dummy; path=/"),  # not echoable: replaced
])
def test_jsessionid_sets_the_cookie_first(cookie: str | None, echoed: str) -> None:
    m = Mounted(jsessionid=True)
    first = poll(m, {"cookie": cookie} if cookie else None)
    assert first.headers[:2] == [("Content-Type", APPLICATION_JS), ("Set-Cookie", echoed)]


# -- streaming -------------------------------------------------------------------------------
def test_streaming_sends_the_prelude_then_frames_one_per_line() -> None:
    m = Mounted()
    s = m.call(xhr_streaming, "POST", "/echo/000/s1/xhr_streaming", route=STREAM)
    assert PRELUDE == b"h" * 2048 + b"\n"
    assert s.headers == [("Content-Type", APPLICATION_JS), ("Cache-Control", NO_CACHE), *CORS_ANY]
    assert s.streamed == [PRELUDE, b"o\n"]
    m.conns[0].write("one")
    m.clock.end_turn()
    m.conns[0].write("two")
    m.clock.end_turn()
    assert s.streamed[2:] == [b'a["one"]\n', b'a["two"]\n'] and not s.ended
    assert m.conns[0].protocol == "xhr-streaming"


def test_streaming_sends_heartbeats_on_the_clock() -> None:
    m = Mounted(heartbeat_delay=10)
    s = m.call(xhr_streaming, "POST", "/echo/000/s1/xhr_streaming", route=STREAM)
    m.clock.advance(9.9)
    assert s.streamed[-1] == b"o\n"
    m.clock.advance(0.2)
    assert s.streamed[-1] == b"h\n"
    m.clock.advance(10)
    assert s.streamed[2:] == [b"h\n", b"h\n"]


def test_streaming_ends_the_response_after_response_limit_bytes() -> None:
    m = Mounted(response_limit=20)
    s = m.call(xhr_streaming, "POST", "/echo/000/s1/xhr_streaming", route=STREAM)
    m.conns[0].write("0123456789")  # 'o\n' + 'a["0123456789"]\n' = 18 bytes: still open
    m.clock.end_turn()
    assert not s.ended
    m.conns[0].write("x")  # 18 + 8 >= 20: this frame is the last
    m.clock.end_turn()
    assert s.ended and s.streamed[-1] == b'a["x"]\n'
    assert m.closed == []  # the session waits for the next request


# -- xhr_send --------------------------------------------------------------------------------
def test_send_delivers_the_messages_in_order_and_answers_204() -> None:
    m = Mounted()
    poll(m)
    sent = send(m, b'["a", 2, {"c": [null]}]')
    assert sent.status == 204 and sent.body == b""
    assert sent.headers == [("Content-Type", TEXT_PLAIN), ("Cache-Control", NO_CACHE), *CORS_ANY]
    assert m.received == ["a", 2, {"c": [None]}]


def test_an_empty_array_is_accepted_and_delivers_nothing() -> None:
    m = Mounted()
    poll(m)
    assert send(m, b"[]").status == 204 and m.received == []


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"", 500, "Payload expected."),
    (b'"not an array"', 500, "Payload expected."),
    (b"[broken", 500, "Broken JSON encoding."),
    (b"[NaN]", 500, "Broken JSON encoding."),
    (b'["\xff"]', 500, "Broken JSON encoding."),
    (b'["' + b"x" * 200 + b'"]', 413, "Payload Too Large"),
])
def test_bad_bodies_are_refused(body: bytes, status: int, message: str) -> None:
    m = Mounted(max_message_size=100)
    poll(m)
    with pytest.raises(HttpError) as err:
        send(m, body)
    assert (err.value.status, err.value.message) == (status, message)
    assert m.received == []


def test_a_send_to_an_unknown_session_is_404() -> None:
    m = Mounted()
    with pytest.raises(HttpError) as err:
        send(m, b'["x"]')
    assert (err.value.status, err.value.message) == (404, "Session not found.")
    assert m.mount.session("s1") is None  # a send never creates a session
