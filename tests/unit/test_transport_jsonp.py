"""transports/jsonp.py on a fake exchange and a real Mount on a fake clock:
``/**/cb("frame");`` polling and jsonp_send's two body encodings."""

from __future__ import annotations

import pytest

from fastsockjs.protocol.http import APPLICATION_JS, NO_CACHE, TEXT_PLAIN, HttpError
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.jsonp import jsonp, jsonp_send
from tests.unit.fakes import FakeExchange, Mounted

POLL = Route("jsonp", "000", "s1")
SEND = Route("jsonp_send", "000", "s1")
FORM = {"content-type": "application/x-www-form-urlencoded"}


def poll(m: Mounted, query: str = "c=cb") -> FakeExchange:
    return m.call(jsonp, "GET", "/echo/000/s1/jsonp?" + query, route=POLL,
                  headers={"origin": "https://a.test"})


def send(m: Mounted, body: bytes, headers: dict[str, str] | None = None) -> FakeExchange:
    return m.call(jsonp_send, "POST", "/echo/000/s1/jsonp_send", body, headers, route=SEND)


def test_a_poll_answers_one_frame_as_a_callback_call() -> None:
    m = Mounted()
    first = poll(m)
    assert first.status == 200
    assert first.headers == [  # script-loaded: no CORS headers
        ("Content-Type", APPLICATION_JS),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", NO_CACHE),
    ]
    assert first.streamed == [b'/**/cb("o");\r\n'] and first.ended
    held = poll(m, "callback=other.f")
    m.conns[0].write('say "hi" </script>')
    m.clock.end_turn()
    assert held.streamed == [b'/**/other.f("a[\\"say \\\\\\"hi\\\\\\" \\u003c/script>\\"]");\r\n']
    assert m.conns[0].protocol == "jsonp-polling"


def test_a_poll_without_a_valid_callback_is_refused() -> None:
    m = Mounted()
    for query in ("", "c=a;b"):
        with pytest.raises(HttpError) as err:
            poll(m, query)
        assert err.value.status == 500
    assert m.mount.session("s1") is None


def test_send_takes_a_form_encoded_d_field() -> None:
    m = Mounted()
    poll(m)
    sent = send(m, b"d=%5B%22x%22%2C%22y%20z%22%5D", FORM)
    assert (sent.status, sent.body) == (200, b"ok")
    assert sent.headers == [("Content-Type", TEXT_PLAIN), ("Cache-Control", NO_CACHE)]
    assert m.received == ["x", "y z"]


def test_send_takes_a_raw_json_body() -> None:
    m = Mounted()
    poll(m)
    send(m, b'["raw"]', {"content-type": "text/plain; charset=UTF-8"})
    send(m, b'["d=not a form"]')
    assert m.received == ["raw", "d=not a form"]


@pytest.mark.parametrize(("body", "headers", "message"), [
    (b"", FORM, "Payload expected."),
    (b"x=1", FORM, "Payload expected."),  # no d field
    (b"d=", FORM, "Payload expected."),
    (b"d=%5Bbroken", FORM, "Broken JSON encoding."),
    (b"", None, "Payload expected."),
])
def test_bad_sends_are_refused(body: bytes, headers: dict[str, str] | None, message: str) -> None:
    m = Mounted()
    poll(m)
    with pytest.raises(HttpError) as err:
        send(m, body, headers)
    assert (err.value.status, err.value.message) == (500, message)


def test_send_sets_the_jsessionid_cookie_when_asked() -> None:
    m = Mounted(jsessionid=True)
    poll(m)
    sent = send(m, b'["x"]', {"cookie": "JSESSIONID=j1"})
    assert ("Set-Cookie", "JSESSIONID=j1; path=/") in sent.headers
