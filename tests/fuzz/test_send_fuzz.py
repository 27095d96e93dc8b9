"""Random ``xhr_send`` / ``jsonp_send`` bodies and hostile JSONP / htmlfile callbacks,
against a live server, with the healthy sessions running next to it.

* A body is answered exactly as the SockJS protocol says (an oracle written
  from the protocol text, not from the server): 204 (xhr_send) / 200 ``ok``
  (jsonp_send) for a JSON array, and then the session's next poll carries
  exactly those messages, echoed; 500 ``Payload expected.`` for an empty body
  or JSON that is not an array; 500 ``Broken JSON encoding.`` for invalid
  UTF-8 or JSON; 413 above ``max_message_size``. Content types are random; a
  form body (``application/x-www-form-urlencoded``) is read from ``d=``.
* A callback name is used only if it fully matches ``[A-Za-z0-9_.-]{1,32}``;
  anything else gets 500 ``invalid "callback" parameter`` and appears nowhere
  in the answer, and no session is created for it.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, quote

import httpcheck  # fuzz/ (put on sys.path by tests.fuzz.live)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.live import MAX_MESSAGE, FuzzServer, examples, exchange, scaled_timeout
from tests.helpers import request

pytestmark = pytest.mark.timeout(scaled_timeout())

SETTINGS = settings(
    max_examples=examples(150),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CALLBACK_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


json_leaf = (st.none() | st.booleans() | st.integers(-(10**20), 10**20)
             | st.floats(allow_nan=False) | st.text(max_size=15))
json_value = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)


@st.composite
def body_text(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["array", "array", "array", "value", "text", "bytes", "edge", "big"]))
    if kind == "array":
        items = draw(st.lists(json_value, max_size=5))
        ascii_only = draw(st.booleans())
        return json.dumps(items, ensure_ascii=ascii_only).encode("utf-8")
    if kind == "value":
        return json.dumps(draw(json_value)).encode("utf-8")
    if kind == "text":
        return draw(st.text(max_size=40)).encode("utf-8")
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    if kind == "big":
        n = MAX_MESSAGE + draw(st.sampled_from([-20, -10, 1, 10]))
        return b'["' + b"b" * (n - 4) + b'"]'
    return draw(st.sampled_from([
        b"", b"[]", b" [1] ", b"[NaN]", b"[Infinity]", b"[-Infinity]", b"[1e400]", b"[1,]", b"[",
        b'["\\ud800"]', b'["\\u0000"]', b'["\\u2028\\u2029"]', b'["</script>"]', b"\xef\xbb\xbf[1]",
        b"[\"\xff\"]", b"null", b"{}", b'"x"', b"[[[[[[[[[[1]]]]]]]]]]", b"[" + b"1," * 500 + b"1]",
    ]))


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def oracle(body: bytes, form: bool) -> tuple[int, bytes, list[Any] | None]:
    """(status, body, messages) the protocol asks for; status 0 = the success status."""
    if len(body) > MAX_MESSAGE:
        return 413, b"Payload Too Large", None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return 500, b"Broken JSON encoding.", None
    if form:
        text = parse_qs(text, keep_blank_values=True).get("d", [""])[0]
    if not text:
        return 500, b"Payload expected.", None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return 500, b"Broken JSON encoding.", None
    if type(value) is not list:
        return 500, b"Payload expected.", None
    return 0, b"", value


def echoed(message: Any) -> str:
    """What the echo service sends back for a message (non-strings as JSON text)."""
    if isinstance(message, str):
        return message
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def poll_messages(fz: FuzzServer, url: str) -> list[str]:
    """Everything queued on the session, flushed by a sentinel so the poll never waits."""
    assert request(fz.port, "POST", url + "/xhr_send", '["<sentinel>"]').status == 204
    r = request(fz.port, "POST", url + "/xhr")
    assert r.status == 200 and r.body.startswith(b"a["), r.body[:200]
    msgs = json.loads(r.body[1:])
    assert msgs[-1] == "<sentinel>", msgs[-3:]
    return list(msgs[:-1])


CONTENT_TYPES = [
    None, "text/plain", "text/plain;charset=UTF-8", "application/json", "application/xml",
    "application/x-www-form-urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED; charset=latin-1",
    "multipart/form-data; boundary=x", "", "\u00e9/\u00e9",
]


@SETTINGS
@given(body=body_text(), ctype=st.sampled_from(CONTENT_TYPES))
def test_xhr_send_bodies(fz: FuzzServer, body: bytes, ctype: str | None) -> None:
    url = f"/echo/000/{uuid.uuid4().hex}"
    assert request(fz.port, "POST", url + "/xhr").body == b"o\n"
    headers = {} if ctype is None else {"Content-Type": ctype}
    r = request(fz.port, "POST", url + "/xhr_send", body, headers)
    status, text, messages = oracle(body, form=False)  # xhr_send never reads forms
    if status:
        assert (r.status, r.body) == (status, text), (body[:200], r.status, r.body[:200])
        assert poll_messages(fz, url) == []
    else:
        assert (r.status, r.body) == (204, b""), (body[:200], r.status, r.body[:200])
        assert poll_messages(fz, url) == [echoed(m) for m in messages or []]
    fz.after_example()


@SETTINGS
@given(body=body_text(), ctype=st.sampled_from(CONTENT_TYPES), form_wrap=st.booleans())
def test_jsonp_send_bodies(fz: FuzzServer, body: bytes, ctype: str | None, form_wrap: bool) -> None:
    url = f"/echo/000/{uuid.uuid4().hex}"
    r = request(fz.port, "GET", url + "/jsonp?c=cb")
    assert r.body == b'/**/cb("o");\r\n', r.body
    is_form = (ctype or "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
    sent = body
    if is_form and form_wrap:
        sent = b"d=" + quote(body, safe="").encode()
    headers = {} if ctype is None else {"Content-Type": ctype}
    r = request(fz.port, "POST", url + "/jsonp_send", sent, headers)
    status, text, messages = oracle(sent, form=is_form)
    if status:
        assert (r.status, r.body) == (status, text), (sent[:200], ctype, r.status, r.body[:200])
        assert poll_messages(fz, url) == []
    else:
        assert (r.status, r.body) == (200, b"ok"), (sent[:200], ctype, r.status, r.body[:200])
        assert poll_messages(fz, url) == [echoed(m) for m in messages or []]
    fz.after_example()


# -- hostile callbacks ---------------------------------------------------------------------------

callbacks = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="ABCxyz019_.-", min_size=1, max_size=40),  # around the 32 limit
    st.sampled_from([
        "</script>", "<script>alert(1)</script>", "a</script><script>x", '"', "'", "a'b", 'a"b',
        "a b", "a\nb", "a\r\nSet-Cookie: x=y", "\u2028", "\u00e9", "\U0001f600", "a;b", "a(b)",
        "a&c=x", "a%00", "x" * 32, "x" * 33, "x" * 5000, "", " ", "a\x00", "alert(1)//", "-",
        "parent.x", "../x", "a+b", "a%2Fb",
    ]),
)


@SETTINGS
@given(cb=callbacks, transport=st.sampled_from(["jsonp", "htmlfile"]),
       param=st.sampled_from(["c", "callback"]), encode=st.booleans())
def test_hostile_callbacks(fz: FuzzServer, cb: str, transport: str, param: str, encode: bool) -> None:
    url = f"/echo/000/{uuid.uuid4().hex}/{transport}"
    meant = cb
    if encode or not all(0x21 <= ord(ch) < 0x7F and ch not in "#&+%" for ch in cb):
        query = quote(cb, safe="")
    else:
        query = cb  # sent raw: the server must decode it the same way
    before = fz.live_sessions()
    data = exchange(fz.port, f"GET {url}?{param}={query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    if len(query) > 8000:
        parsed = httpcheck.parse_responses(data)
        assert [r.status for r in parsed.responses] == [414]
        fz.after_example()
        return
    parsed = httpcheck.parse_responses(data)
    httpcheck.check_responses(parsed)
    assert len(parsed.responses) == 1, data[:300]
    resp = parsed.responses[0]
    if CALLBACK_RE.fullmatch(meant):
        assert resp.status == 200, (meant, data[:300])
        if transport == "jsonp":
            assert resp.body.startswith(f'/**/{meant}("o");'.encode()), resp.body[:200]
        else:
            assert f"var c = parent.{meant};".encode() in resp.body, resp.body[:400]
    else:
        assert (resp.status, resp.body) == (500, b'invalid "callback" parameter'), (meant, data[:300])
        if len(meant) >= 3:
            assert meant.encode("utf-8", "surrogatepass") not in data.split(b"\r\n\r\n")[0]
        assert fz.live_sessions() <= before, "a session was created for an invalid callback"
    fz.after_example()


def test_send_and_callback_fuzzing_leaves_nothing_behind(fz: FuzzServer) -> None:
    fz.check_clean()
