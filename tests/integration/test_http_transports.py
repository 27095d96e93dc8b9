"""xhr polling/streaming, eventsource, htmlfile, jsonp, JSESSIONID, closing,
and HTTP/1.0 vs 1.1 framing, as the protocol definition describes them."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from fastsockjs._frames_py import quote
from tests.helpers import RawHttp, RawWebSocket, ServerThread, request, wait_for

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


def sid(prefix: str = "/echo") -> str:
    return f"{prefix}/000/{uuid.uuid4()}"


def post(ts: ServerThread, path: str, body: str | bytes | None = None, **headers: str):  # type: ignore[no-untyped-def]
    return request(ts.port, "POST", path, body, {k.replace("_", "-"): v for k, v in headers.items()})


def ctype(r) -> str:  # type: ignore[no-untyped-def]
    return (r["content-type"] or "").replace(" ", "")


def send_and_wait_read(ts: ServerThread, conn: RawHttp, data: bytes) -> None:
    """Send the poll request ``data`` and wait until it holds its session (its
    receiver is attached), on any host: native, or SockJSApp under an ASGI server."""
    path = data.split(b" ", 2)[1].decode()
    prefix, _, rest = path[1:].partition("/")
    session_id = rest.split("/")[1]

    def attached() -> bool:
        def check() -> bool:
            for mount in ts.listener.endpoints:  # type: ignore[union-attr]
                if mount.prefix == "/" + prefix:
                    session = mount.session(session_id)
                    return session is not None and session.receiver is not None
            return False

        return bool(ts.call(check))

    conn.send(data)
    wait_for(attached, 5, "the poll to hold its session")


def wait_session_closed(ts: ServerThread, url: str) -> None:
    """Wait until no open connection belongs to the session at ``url``."""
    def open_here() -> bool:
        conns = ts.call(lambda: ts.listener.engine.open_connections())  # type: ignore[union-attr]
        return any(c.pathname.startswith(url + "/") for c in conns)

    wait_for(lambda: not open_here(), 5, f"session {url} closed")


# -- session URLs -------------------------------------------------------------------

def test_any_server_and_session_value_opens_a_session(ts: ServerThread) -> None:
    for part in ("/a/a", "/_/_", "/1/" + uuid.uuid4().hex, "/abcdefgh_i-j%20/abcdefg_i-j%20x"):
        r = post(ts, "/echo" + part + str(uuid.uuid4().int % 1000) + "/xhr")
        assert (r.status, r.body) == (200, b"o\n")


def test_invalid_session_paths_are_404(ts: ServerThread) -> None:
    for part in ("//", "/a./a", "/a/a.", "/./.", "/", "///"):
        assert request(ts.port, "GET", "/echo" + part + "/xhr").status == 404, part
        assert post(ts, "/echo" + part + "/xhr").status == 404, part


def test_server_id_is_ignored(ts: ServerThread) -> None:
    session = str(uuid.uuid4())
    assert post(ts, f"/echo/000/{session}/xhr").body == b"o\n"
    assert post(ts, f"/echo/000/{session}/xhr_send", '["a"]').status == 204
    assert post(ts, f"/echo/999/{session}/xhr").body == b'a["a"]\n'


# -- xhr polling --------------------------------------------------------------------

def test_xhr_polling_round_trip_and_headers(ts: ServerThread) -> None:
    url = sid()
    r = post(ts, url + "/xhr", Origin="test")
    assert (r.status, r.body) == (200, b"o\n")
    assert ctype(r) == "application/javascript;charset=UTF-8"
    assert r["cache-control"] == NO_CACHE
    assert r["access-control-allow-origin"] == "test"
    assert r["access-control-allow-credentials"] == "true"
    r = post(ts, url + "/xhr_send", '["x"]', Origin="test")
    assert (r.status, r.body) == (204, b"")
    assert ctype(r) == "text/plain;charset=UTF-8"
    assert r["cache-control"] == NO_CACHE
    assert r["access-control-allow-origin"] == "test"
    assert post(ts, url + "/xhr").body == b'a["x"]\n'


def test_messages_queue_until_a_receiver_arrives_and_arrive_in_order(ts: ServerThread) -> None:
    url = sid()
    post(ts, url + "/xhr")
    for i in range(5):
        assert post(ts, url + "/xhr_send", json.dumps([str(i), f"{i}b"])).status == 204
    r = post(ts, url + "/xhr")
    assert json.loads(r.body[1:]) == [x for i in range(5) for x in (str(i), f"{i}b")]


def test_xhr_send_errors(ts: ServerThread) -> None:
    assert post(ts, sid() + "/xhr_send", '["x"]').status == 404
    url = sid()
    post(ts, url + "/xhr")
    for body, message in (('["x', b"Broken JSON encoding."), ("", b"Payload expected."),
                          ('{"a": 1}', b"Payload expected."), ('"x"', b"Payload expected."),
                          ("[NaN]", b"Broken JSON encoding."),
                          (b'["\xff"]', b"Broken JSON encoding.")):
        r = post(ts, url + "/xhr_send", body)
        assert r.status == 500, body
        assert message in r.body
    # The session is still fine.
    assert post(ts, url + "/xhr_send", '["a"]').status == 204
    assert post(ts, url + "/xhr").body == b'a["a"]\n'


def test_xhr_send_accepts_any_content_type_and_empty_arrays(ts: ServerThread) -> None:
    url = sid()
    post(ts, url + "/xhr")
    types = ["text/plain", "T", "application/json", "application/xml", "",
             "application/json; charset=utf-8", "text/xml; charset=utf-8", "text/xml"]
    for t in types:
        assert post(ts, url + "/xhr_send", '["a"]', Content_Type=t).status == 204
    assert post(ts, url + "/xhr_send", "[]").status == 204
    assert post(ts, url + "/xhr").body == ("a[" + ",".join(['"a"'] * len(types)) + "]\n").encode()


def test_preflight_for_session_endpoints(ts: ServerThread) -> None:
    for suffix in ("/xhr", "/xhr_send", "/xhr_streaming"):
        r = request(ts.port, "OPTIONS", "/echo/abc/abc" + suffix, headers={
            "Origin": "null", "Access-Control-Request-Method": "POST"})
        assert r.status == 204 and r.body == b""
        assert r["access-control-allow-methods"] == "OPTIONS, POST"
        assert r["access-control-allow-origin"] == "null"
        assert re.search(r"max-age=[1-9][0-9]{6}", r["cache-control"] or "")
        assert int(r["access-control-max-age"] or 0) > 1000000


def test_cors_request_headers_echoed_only_when_asked(ts: ServerThread) -> None:
    base = {"Origin": "test", "Access-Control-Request-Method": "POST"}
    r = request(ts.port, "OPTIONS", sid() + "/xhr",
                headers={**base, "Access-Control-Request-Headers": "a, b, c"})
    assert r["access-control-allow-headers"] == "a, b, c"
    r = request(ts.port, "OPTIONS", sid() + "/xhr",
                headers={**base, "Access-Control-Request-Headers": ""})
    assert r["access-control-allow-headers"] is None
    r = request(ts.port, "OPTIONS", sid() + "/xhr", headers=base)
    assert r["access-control-allow-headers"] is None


def test_second_receiver_gets_2010_and_first_is_unaffected(ts: ServerThread) -> None:
    url = sid()
    post(ts, url + "/xhr")
    held = RawHttp(ts.port)
    send_and_wait_read(
        ts, held, f"POST {url}/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    r = post(ts, url + "/xhr")
    assert r.body == b'c[2010,"Another connection still open"]\n'
    post(ts, url + "/xhr_send", '["still"]')
    status, headers = held.read_head()
    assert status == 200
    assert held.read_chunk() == b'a["still"]\n'
    held.close()


def test_close_session_serves_close_frame_repeatedly(ts: ServerThread) -> None:
    url = sid("/close")
    assert post(ts, url + "/xhr").body == b"o\n"
    for _ in range(2):
        assert post(ts, url + "/xhr").body == b'c[3000,"Go away!"]\n'


# -- streaming ------------------------------------------------------------------------

def test_xhr_streaming(ts: ServerThread) -> None:
    url = sid()
    c = RawHttp(ts.port)
    status, h = c.request("POST", url + "/xhr_streaming", {"Origin": "test"})
    assert status == 200
    assert h["content-type"].replace(" ", "") == "application/javascript;charset=UTF-8"
    assert h["cache-control"] == NO_CACHE
    assert h["access-control-allow-origin"] == "test"
    assert c.read_chunk() == b"h" * 2048 + b"\n"
    assert c.read_chunk() == b"o\n"
    assert post(ts, url + "/xhr_send", '["x"]').status == 204
    assert c.read_chunk() == b'a["x"]\n'
    c.close()


def test_xhr_streaming_response_limit(ts: ServerThread) -> None:
    url = sid()
    c = RawHttp(ts.port)
    c.request("POST", url + "/xhr_streaming")
    c.read_chunk()
    assert c.read_chunk() == b"o\n"
    msg = '"' + "x" * 128 + '"'
    # The /echo service has response_limit 4096: 'o\n' + 31 frames of 134 bytes pass it.
    for _ in range(31):
        assert post(ts, url + "/xhr_send", "[" + msg + "]").status == 204
        assert c.read_chunk() == ("a[" + msg + "]\n").encode()
    assert c.read_chunk() == b""
    # Keep-alive: the same connection serves the next request.
    status, _ = c.request("GET", "/echo")
    assert status == 200
    assert c.read_exact(19) == b"Welcome to SockJS!\n"
    c.close()


def test_eventsource(ts: ServerThread) -> None:
    url = sid()
    c = RawHttp(ts.port)
    status, h = c.request("GET", url + "/eventsource")
    assert status == 200
    assert h["content-type"] == "text/event-stream"
    assert h["cache-control"] == NO_CACHE
    assert c.read_chunk() == b"\r\n"
    assert c.read_chunk() == b"data: o\r\n\r\n"
    post(ts, url + "/xhr_send", '["x"]')
    assert c.read_chunk() == b'data: a["x"]\r\n\r\n'
    post(ts, url + "/xhr_send", r'["  \u0000\n\r "]')
    assert c.read_chunk() == b'data: a["  \\u0000\\n\\r "]\r\n\r\n'
    # sockjs-client decodeURIs every event: '%' must survive it.
    post(ts, url + "/xhr_send", '["%20 100%"]')
    assert c.read_chunk() == b'data: a["%2520 100%25"]\r\n\r\n'
    c.close()


def test_eventsource_response_limit(ts: ServerThread) -> None:
    url = sid()
    c = RawHttp(ts.port)
    c.request("GET", url + "/eventsource")
    c.read_chunk()
    assert c.read_chunk() == b"data: o\r\n\r\n"
    msg = '"' + "x" * 4096 + '"'
    post(ts, url + "/xhr_send", "[" + msg + "]")
    assert c.read_chunk() == ("data: a[" + msg + "]\r\n\r\n").encode()
    assert c.read_chunk() == b""
    c.close()


HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.callback;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


def test_htmlfile(ts: ServerThread) -> None:
    url = sid()
    c = RawHttp(ts.port)
    status, h = c.request("GET", url + "/htmlfile?c=%63allback")
    assert status == 200
    assert h["content-type"].replace(" ", "") == "text/html;charset=UTF-8"
    assert h["cache-control"] == NO_CACHE
    first = c.read_chunk()
    assert first.decode().strip() == HTMLFILE_HEAD
    assert len(first) > 1024
    assert c.read_chunk() == b'<script>\np("o");\n</script>\r\n'
    post(ts, url + "/xhr_send", '["x"]')
    assert c.read_chunk() == b'<script>\np("a[\\"x\\"]");\n</script>\r\n'
    post(ts, url + "/xhr_send", '["</script><b>"]')
    chunk = c.read_chunk()
    assert b"</script><b>" not in chunk[: -len(b"</script>\r\n")]
    assert chunk == b'<script>\np("a[\\"\\u003c/script>\\u003cb>\\"]");\n</script>\r\n'
    c.close()


@pytest.mark.parametrize("transport", ["htmlfile", "jsonp"])
def test_callback_required_and_validated(ts: ServerThread, transport: str) -> None:
    session_id = uuid.uuid4().hex
    r = request(ts.port, "GET", f"/echo/a/{session_id}/{transport}")
    assert r.status == 500 and b'"callback" parameter required' in r.body
    for cb in ("%20", "*", "abc(", "abc%28", "x" * 33, "", "a%3Cb", "alert%281%29"):
        r = request(ts.port, "GET", f"/echo/a/{session_id}/{transport}?c={cb}")
        assert r.status == 500, cb
        assert b'invalid "callback" parameter' in r.body
    # Nothing was opened by the refused requests.
    assert ts.call(lambda: ts.servers[0].endpoints[0].session(session_id)) is None


def test_jsonp_polling(ts: ServerThread) -> None:
    url = sid()
    r = request(ts.port, "GET", url + "/jsonp?c=%63allback")
    assert r.status == 200
    assert ctype(r) == "application/javascript;charset=UTF-8"
    assert r["x-content-type-options"] == "nosniff"
    assert r["cache-control"] == NO_CACHE
    assert r.body == b'/**/callback("o");\r\n'
    r = post(ts, url + "/jsonp_send", "d=%5B%22x%22%5D",
             Content_Type="application/x-www-form-urlencoded")
    assert (r.status, r.body) == (200, b"ok")
    assert ctype(r) == "text/plain;charset=UTF-8"
    assert r["cache-control"] == NO_CACHE
    r = post(ts, url + "/jsonp_send", '["%61bc"]', Content_Type="text/plain")
    assert r.body == b"ok"
    r = request(ts.port, "GET", url + "/jsonp?c=x")
    assert r.body == b'/**/x("a[\\"x\\",\\"%61bc\\"]");\r\n'


def test_jsonp_send_errors(ts: ServerThread) -> None:
    url = sid()
    request(ts.port, "GET", url + "/jsonp?c=x")
    form = "application/x-www-form-urlencoded"
    r = post(ts, url + "/jsonp_send", "d=%5B%22x", Content_Type=form)
    assert r.status == 500 and b"Broken JSON encoding." in r.body
    for body in ("", "d=", "p=p"):
        r = post(ts, url + "/jsonp_send", body, Content_Type=form)
        assert r.status == 500 and b"Payload expected." in r.body
    assert post(ts, url + "/jsonp_send", "d=%5B%5D", Content_Type=form).body == b"ok"
    assert post(ts, sid() + "/jsonp_send", "d=%5B%5D", Content_Type=form).status == 404


def test_jsonp_close(ts: ServerThread) -> None:
    url = sid("/close")
    assert request(ts.port, "GET", url + "/jsonp?c=x").body == b'/**/x("o");\r\n'
    for _ in range(2):
        assert request(ts.port, "GET", url + "/jsonp?c=x").body == \
            b'/**/x("c[3000,\\"Go away!\\"]");\r\n'


# -- JSESSIONID -------------------------------------------------------------------------

def test_jsessionid_cookie_on_every_session_endpoint(ts: ServerThread) -> None:
    def cookie(r_headers: dict[str, str]) -> list[str]:
        return [p.strip() for p in r_headers["set-cookie"].split(";")]

    r = post(ts, sid("/cookie_needed_echo") + "/xhr")
    assert cookie(r.headers) == ["JSESSIONID=dummy", "path=/"]
    r = post(ts, sid("/cookie_needed_echo") + "/xhr", Cookie="JSESSIONID=abcdef")
    assert cookie(r.headers) == ["JSESSIONID=abcdef", "path=/"]
    # A value that could inject header syntax is not echoed.
    r = post(ts, sid("/cookie_needed_echo") + "/xhr", Cookie="JSESSIONID=a,b c")
    assert cookie(r.headers) == ["JSESSIONID=dummy", "path=/"]
    for method, suffix in (("POST", "/xhr_streaming"), ("GET", "/eventsource"),
                           ("GET", "/htmlfile?c=cb")):
        c = RawHttp(ts.port)
        status, h = c.request(method, sid("/cookie_needed_echo") + suffix)
        assert status == 200
        assert h["set-cookie"].split(";")[0] == "JSESSIONID=dummy"
        c.close()
    url = sid("/cookie_needed_echo")
    r = request(ts.port, "GET", url + "/jsonp?c=cb")
    assert cookie(r.headers) == ["JSESSIONID=dummy", "path=/"]
    r = post(ts, url + "/jsonp_send", "d=%5B%5D", Content_Type="application/x-www-form-urlencoded")
    assert cookie(r.headers) == ["JSESSIONID=dummy", "path=/"]
    # Not on endpoints that are not session requests, nor without the option.
    assert request(ts.port, "GET", "/cookie_needed_echo/info").headers.get("set-cookie") is None
    assert post(ts, sid() + "/xhr").headers.get("set-cookie") is None


# -- JSON encoding ------------------------------------------------------------------------

SERVER_ESCAPES = re.compile("[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")


def test_server_escapes_what_browsers_mangle(ts: ServerThread) -> None:
    url = sid()
    post(ts, url + "/xhr")
    chars = "".join(chr(i) for i in range(255, 65536) if SERVER_ESCAPES.match(chr(i)))
    escaped = '"' + "".join("\\u%04x" % ord(c) for c in chars) + '"'
    assert post(ts, url + "/xhr_send", "[" + escaped + "]").status == 204
    assert post(ts, url + "/xhr").body.strip()[2:-1].decode() == escaped


def test_every_bmp_code_point_round_trips(ts: ServerThread) -> None:
    url = sid()
    post(ts, url + "/xhr")
    body = "[" + "".join(["\"", "".join("\\u%04x" % i for i in range(65536)), "\""]) + "]"
    # As in JavaScript, adjacent \udbff\udc00 decode as one pair: compare with
    # what a JSON decoder makes of the very same text.
    sent = json.loads(body)
    assert post(ts, url + "/xhr_send", body).status == 204
    r = post(ts, url + "/xhr")
    assert json.loads(r.body[1:]) == sent
    assert r.body == ("a[" + quote(sent[0]) + "]\n").encode("utf-8")
    # And one code point per message, lone surrogates included.
    url = sid()
    post(ts, url + "/xhr")
    singles = "[" + ",".join('"\\u%04x"' % i for i in range(65536)) + "]"
    assert post(ts, url + "/xhr_send", singles).status == 204
    assert json.loads(post(ts, url + "/xhr").body[1:]) == [chr(i) for i in range(65536)]


# -- closing --------------------------------------------------------------------------------

def test_close_frame_for_streaming_receivers(ts: ServerThread) -> None:
    url = sid("/close")
    c1 = RawHttp(ts.port)
    c1.request("POST", url + "/xhr_streaming")
    c1.read_chunk()
    assert c1.read_chunk() == b"o\n"
    assert c1.read_chunk() == b'c[3000,"Go away!"]\n'
    assert c1.read_chunk() == b""
    c2 = RawHttp(ts.port)
    c2.request("POST", url + "/xhr_streaming")
    c2.read_chunk()
    assert c2.read_chunk() == b'c[3000,"Go away!"]\n'
    assert c2.read_chunk() == b""
    c1.close()
    c2.close()


def test_aborted_receiver_closes_the_session(ts: ServerThread) -> None:
    url = sid()
    c1 = RawHttp(ts.port)
    c1.request("POST", url + "/xhr_streaming")
    c1.read_chunk()
    assert c1.read_chunk() == b"o\n"
    c2 = RawHttp(ts.port)
    c2.request("POST", url + "/xhr_streaming")
    c2.read_chunk()
    assert c2.read_chunk() == b'c[2010,"Another connection still open"]\n'
    assert c2.read_chunk() == b""
    c1.close()
    wait_session_closed(ts, url)
    c3 = RawHttp(ts.port)
    c3.request("POST", url + "/xhr_streaming")
    c3.read_chunk()
    assert c3.read_chunk() == b"o\n"
    c2.close()
    c3.close()


def test_aborted_poll_closes_the_session(ts: ServerThread) -> None:
    url = sid()
    assert post(ts, url + "/xhr").body == b"o\n"
    held = RawHttp(ts.port)
    send_and_wait_read(
        ts, held, f"POST {url}/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    assert post(ts, url + "/xhr").body == b'c[2010,"Another connection still open"]\n'
    held.close()
    wait_session_closed(ts, url)
    assert post(ts, url + "/xhr").body == b"o\n"


# -- HTTP versions ----------------------------------------------------------------------------

def test_http10_fixed_response(ts: ServerThread) -> None:
    c = RawHttp(ts.port)
    status, h = c.request("GET", "/echo", {"Connection": "Keep-Alive"}, version="1.0")
    assert status == 200
    assert "transfer-encoding" not in h
    assert int(h["content-length"]) == 19
    assert c.read_exact(19) == b"Welcome to SockJS!\n"
    assert h["connection"].lower() == "keep-alive"
    status, _ = c.request("GET", "/echo", {"Connection": "Keep-Alive"}, version="1.0")
    assert status == 200
    c.close()
    c = RawHttp(ts.port)
    status, h = c.request("GET", "/echo", version="1.0")
    assert c.read_exact(19) == b"Welcome to SockJS!\n"
    assert c.closed()


def test_http10_streaming_is_close_delimited(ts: ServerThread) -> None:
    c = RawHttp(ts.port)
    status, h = c.request("POST", sid("/close") + "/xhr_streaming", {"Connection": "Keep-Alive"},
                          version="1.0")
    assert status == 200
    assert "transfer-encoding" not in h and "content-length" not in h
    assert c.read_until_close() == b"h" * 2048 + b"\n" + b"o\n" + b'c[3000,"Go away!"]\n'


def test_http11_keepalive_and_pipelining(ts: ServerThread) -> None:
    c = RawHttp(ts.port)
    one = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    c.send(one * 3)
    for _ in range(3):
        status, h = c.read_head()
        assert status == 200 and h["content-length"] == "19"
        assert c.read_exact(19) == b"Welcome to SockJS!\n"
    c.close()


def test_post_without_content_length(ts: ServerThread) -> None:
    c = RawHttp(ts.port)
    c.send(f"POST {sid()}/xhr HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, _ = c.read_head()
    assert status == 200
    assert c.read_chunk() == b"o\n"
    c.close()


def test_malformed_http_gets_400_and_server_survives(ts: ServerThread) -> None:
    for junk in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                 b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"):
        c = RawHttp(ts.port)
        c.send(junk)
        status, _ = c.read_head()
        assert status == 400
        c.close()
    assert request(ts.port, "GET", "/echo").status == 200


def test_oversized_body_is_413(ts: ServerThread) -> None:
    url = sid()
    post(ts, url + "/xhr")
    big = '["' + "x" * (1024 * 1024 + 10) + '"]'
    r = post(ts, url + "/xhr_send", big)
    assert r.status == 413
    assert post(ts, url + "/xhr_send", '["ok"]').status == 204
    assert post(ts, url + "/xhr").body == b'a["ok"]\n'


def test_a_batch_of_large_messages_in_one_body_is_accepted(ts: ServerThread) -> None:
    # sockjs-client sends every message queued meanwhile in one xhr_send body:
    # three 64 Ki-character messages it escapes (6 bytes a character) make a
    # 1.1 MiB body of messages each well under the 1 MiB message limit.
    url = sid()
    post(ts, url + "/xhr")
    one = "\u0300" * 65536
    body = json.dumps([one, one, one])
    assert len(body.encode()) > 1024 * 1024
    assert post(ts, url + "/xhr_send", body).status == 204
    got: list[str] = []
    for _ in range(10):
        r = post(ts, url + "/xhr")
        assert r.status == 200
        if r.body.startswith(b"a"):
            got.extend(json.loads(r.body[1:]))
        if len(got) >= 3:
            break
    assert got == [one, one, one]


def test_one_oversized_message_among_small_ones_is_413(ts: ServerThread) -> None:
    url = sid()
    post(ts, url + "/xhr")
    big = "x" * (1024 * 1024 + 10)
    r = post(ts, url + "/xhr_send", json.dumps(["small", big, "small"]))
    assert r.status == 413
    # Nothing of the refused body was delivered.
    assert post(ts, url + "/xhr_send", '["ok"]').status == 204
    assert post(ts, url + "/xhr").body == b'a["ok"]\n'


def test_amplify_256_kib_with_default_limits(ts: ServerThread) -> None:
    # sockjs-client's own test suite asks /amplify for 2**18 characters: the
    # default limits (outbox, response_limit) must serve it on every transport kind.
    ws = RawWebSocket(ts.port, f"/amplify/000/{uuid.uuid4().hex}/websocket")
    assert ws.recv_text() == "o"
    ws.send_text('["18"]')
    assert ws.recv_text() == 'a["' + "x" * 2**18 + '"]'
    ws.close()
    url = f"/amplify/000/{uuid.uuid4().hex}"
    assert post(ts, url + "/xhr").body == b"o\n"
    assert post(ts, url + "/xhr_send", '["18"]').status == 204
    assert post(ts, url + "/xhr").body == ('a["' + "x" * 2**18 + '"]\n').encode()
