"""The request-head kernel: the compiled ``_http`` against its twin ``_http_py``
(the same answer for every input), and whatever the fast path accepts against
httptools (the same request, so that falling back never changes a reading)."""

from __future__ import annotations

from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsockjs import _http_py as twin
from tests.helpers import compiled_http

LIMITS = (8192, 65536, 1 << 20)  # target, header block, body: the Listener's defaults
XHR_SEND = (
    b"POST /echo/000/abc/xhr_send HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"
    b"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 7\r\n\r\n[\"hi\"]x"
)


def compiled() -> Any:
    return compiled_http.require()


class _Reader:
    """httptools' reading of one request, folded as HttpProtocol folds it."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.hosts = 0
        self.body = b""
        self.done: tuple[str, str, bool, bool] | None = None
        self.parser: Any = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.lower().decode("latin-1"), value.decode("latin-1")
        self.hosts += key == "host"
        self.headers[key] = self.headers[key] + ", " + text if key in self.headers else text

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        # (Read here, as HttpProtocol does: the parser forgets them afterwards.)
        p = self.parser
        self.done = (p.get_method().decode("ascii"), p.get_http_version(),
                     p.should_keep_alive(), p.should_upgrade())


def httptools_reading(data: bytes) -> tuple[Any, ...]:
    reader = _Reader()
    reader.parser = httptools.HttpRequestParser(reader)
    reader.parser.feed_data(data)
    assert reader.done is not None, "httptools did not see a whole request"
    method, version, keep_alive, upgrade = reader.done
    assert not upgrade
    return (method, reader.url.decode("latin-1"), version, reader.headers, reader.hosts,
            keep_alive, reader.body)


def check(buf: bytes, start: int = 0, limits: tuple[int, int, int] = LIMITS) -> Any:
    """Both implementations agree; an accepted request reads as httptools reads it."""
    expected = twin.parse_request(buf, start, *limits)
    assert compiled().parse_request(buf, start, *limits) == expected
    if isinstance(expected, tuple) and expected[0] <= len(buf):
        assert httptools_reading(buf[start : expected[0]]) == expected[1:]
    return expected


# -- what it reads ------------------------------------------------------------------
def test_an_xhr_send_reads_whole_and_the_next_request_starts_after_its_body() -> None:
    end, method, target, version, headers, hosts, keep_alive, body = check(XHR_SEND)
    assert (method, target, version, hosts, keep_alive) == (
        "POST", "/echo/000/abc/xhr_send", "1.1", 1, True,
    )
    assert headers == {
        "host": "127.0.0.1:8081",
        "content-type": "text/plain;charset=UTF-8",
        "content-length": "7",
    }
    assert body == b'["hi"]x' and end == len(XHR_SEND)


def test_pipelined_requests_are_read_one_after_another() -> None:
    buf = XHR_SEND + b"GET /echo/info HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    first = check(buf)
    second = check(buf, first[0])
    assert second[1:4] == ("GET", "/echo/info", "1.0") and second[6] is True
    assert second[0] == len(buf)


def test_repeated_headers_fold_and_values_keep_their_inner_and_trailing_space() -> None:
    buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a:\t 2 \r\nCookie: a=1; b=2\r\n\r\n"
    headers = check(buf)[4]
    assert headers["x-a"] == "1, 2 " and headers["cookie"] == "a=1; b=2"


@pytest.mark.parametrize(
    "version, connection, keep_alive",
    [
        ("1.1", "", True),
        ("1.1", "Connection: close\r\n", False),
        ("1.1", "Connection: Keep-Alive\r\n", True),
        ("1.0", "", False),
        ("1.0", "Connection: keep-alive\r\n", True),
        ("1.0", "Connection: CLOSE\r\n", False),
    ],
)
def test_keep_alive_as_httptools_decides_it(version: str, connection: str, keep_alive: bool) -> None:
    buf = f"GET / HTTP/{version}\r\nHost: h\r\n{connection}\r\n".encode()
    assert check(buf)[6] is keep_alive


def test_common_header_names_are_one_str_each_and_the_rest_read_the_same() -> None:
    """Names browsers send come from the kernel's table (one str object, its hash
    kept) in any case; other names are new strings; the dict is the twin's."""
    def names(req: bytes) -> dict[str, str]:
        result = compiled().parse_request(req, 0, 8192, 65536, 1 << 20)
        assert isinstance(result, tuple)
        assert result[4] == twin.parse_request(req, 0, 8192, 65536, 1 << 20)[4]  # type: ignore[index]
        return {k: k for k in result[4]}

    req = (b"GET / HTTP/1.1\r\nHost: x\r\nUSER-Agent: a\r\nsec-ch-ua-platform: p\r\n"
           b"X-Forwarded-For: 1.2.3.4\r\nTE: trailers\r\nX-Custom: c\r\nAccept-Encodinh: z\r\n\r\n")
    first, second = names(req), names(req)
    for name in ("host", "user-agent", "sec-ch-ua-platform", "x-forwarded-for", "te"):
        assert first[name] is second[name], name
    for name in ("x-custom", "accept-encodinh"):  # not in the table: equal, not shared
        assert first[name] == second[name] and first[name] is not second[name], name


def test_an_incomplete_head_needs_more_at_every_cut() -> None:
    head_end = XHR_SEND.index(b"\r\n\r\n") + 3
    for cut in range(head_end):
        assert check(XHR_SEND[:cut]) == twin.NEED_MORE


def test_an_incomplete_body_gives_where_the_request_ends_and_no_body_yet() -> None:
    head_end = XHR_SEND.index(b"\r\n\r\n") + 4
    for cut in range(head_end, len(XHR_SEND)):
        result = check(XHR_SEND[:cut])
        assert result[0] == len(XHR_SEND) and result[7] == b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",  # obs-fold
        b"GET /x HTTP/1.1\nHost: h\r\n\r\n",  # bare LF
        b"GET /x HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",  # bare CR
        b"GET /x HTTP/1.1\r\nHost: h\x00\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost : h\r\n\r\n",  # space before the colon
        b"GET /x HTTP/1.1\r\n: h\r\n\r\n",
        b"BREW /x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"get /x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET  /x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /x HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET /x\xff HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /x HTTP/1.1 \r\nHost: h\r\n\r\n",
        b"\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1 \r\n\r\nx",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h\r\n" + b"N" * 257 + b": v\r\n\r\n",
    ],
)
def test_everything_outside_the_plain_subset_falls_back(request_bytes: bytes) -> None:
    assert check(request_bytes) == twin.FALLBACK


def test_limits_fall_back_so_that_httptools_gives_their_error() -> None:
    target = b"GET /" + b"a" * 99 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    assert check(target, limits=(100, 1000, 1000))[2] == "/" + "a" * 99
    assert check(target, limits=(99, 1000, 1000)) == twin.FALLBACK
    headers = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 10 + b"\r\n\r\n"
    size = (4 + 1 + 4) + (1 + 10 + 4)  # name + value + 4 for each header
    assert isinstance(check(headers, limits=(100, size, 1000)), tuple)
    assert check(headers, limits=(100, size - 1, 1000)) == twin.FALLBACK
    body = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
    assert isinstance(check(body, limits=(100, 1000, 10)), tuple)
    assert check(body, limits=(100, 1000, 9)) == twin.FALLBACK


# -- the twins agree on anything --------------------------------------------------------
_METHODS = st.sampled_from([b"GET", b"POST", b"OPTIONS", b"HEAD", b"PUT", b"DELETE",
                            b"PATCH", b"CONNECT", b"get", b"TRACE", b""])
_TARGET = st.one_of(
    st.sampled_from([b"/", b"/echo/info", b"/echo/000/s1/xhr?t=1", b"*",
                     b"http://h:1/echo/info", b"/a#f"]),
    st.binary(min_size=0, max_size=12),
)
_NAMES = st.one_of(
    st.sampled_from([b"Host", b"host", b"Content-Length", b"content-length", b"Connection",
                     b"Transfer-Encoding", b"Upgrade", b"Origin", b"Cookie", b"X-A", b"x-a"]),
    st.binary(min_size=0, max_size=6),
)
_VALUES = st.one_of(
    st.sampled_from([b"", b"h", b"0", b"5", b"12", b"close", b"keep-alive", b"Upgrade",
                     b"chunked", b" spaced ", b"\tx", b"\xe9t\xe9"]),
    st.binary(min_size=0, max_size=8),
)
_SEP = st.sampled_from([b": ", b":", b":\t", b" : ", b": \t"])
_EOL = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])


@st.composite
def requests(draw: Any) -> bytes:
    parts = [draw(_METHODS), b" ", draw(_TARGET), b" ",
             draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2"])),
             draw(_EOL)]
    for _ in range(draw(st.integers(0, 5))):
        parts += [draw(_NAMES), draw(_SEP), draw(_VALUES), draw(_EOL)]
    parts.append(b"\r\n")
    parts.append(draw(st.binary(max_size=16)))
    return b"".join(parts)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.integers(0, 4))
def test_compiled_and_twin_agree_and_httptools_reads_what_they_accept(
    buf: bytes, start: int
) -> None:
    check(buf, min(start, len(buf)))


@settings(max_examples=1000, deadline=None)
@given(requests(), st.data())
def test_every_cut_and_every_limit_agree(buf: bytes, data: Any) -> None:
    cut = data.draw(st.integers(0, len(buf)))
    limits = (data.draw(st.integers(0, 40)), data.draw(st.integers(0, 200)),
              data.draw(st.integers(0, 20)))
    check(buf[:cut], 0, limits)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_agree(buf: bytes) -> None:
    check(buf + b"\r\n\r\n")


# -- response heads ----------------------------------------------------------------------
def heads_agree(*args: Any, **kwargs: Any) -> bytes | type[BaseException]:
    """The twin's head and the compiled one's: the same bytes, or the same error."""
    results = []
    for module in (twin, compiled()):
        try:
            results.append(module.head(*args, **kwargs))
        except (TypeError, UnicodeEncodeError, ValueError) as exc:
            results.append(type(exc))
    assert results[0] == results[1]
    return results[0]


def test_a_head_frames_by_length_chunks_or_close_and_says_keep_alive_to_http_1_0() -> None:
    cors = [("Content-Type", "text/plain"), ("Access-Control-Allow-Origin", "https://a.example")]
    assert heads_agree(204, cors) == (
        b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n"
        b"Access-Control-Allow-Origin: https://a.example\r\n\r\n"
    )
    assert heads_agree(200, [], content_length=12).endswith(b"Content-Length: 12\r\n\r\n")
    assert heads_agree(200, [], chunked=True).endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert heads_agree(200, [], keep_alive=False).endswith(b"Connection: close\r\n\r\n")
    assert heads_agree(200, [], version="1.0").endswith(b"Connection: keep-alive\r\n\r\n")
    assert heads_agree(599, []).startswith(b"HTTP/1.1 599 Unknown\r\n")
    latin1 = [("X", "\xe9")]
    assert heads_agree(200, latin1).endswith(b"X: \xe9\r\n\r\n")
    assert compiled().head(200, iter(latin1)) == twin.head(200, iter(latin1))  # any iterable
    assert heads_agree(200, [("X", "\u20ac")]) is UnicodeEncodeError
    assert heads_agree(200, [("X", 1)]) is TypeError
    assert heads_agree(200, [("X", "a", "b")]) is ValueError


_TEXT = st.text(st.characters(max_codepoint=0x2FF), max_size=12)


@settings(max_examples=1000, deadline=None)
@given(
    st.integers(100, 999),
    st.lists(st.tuples(_TEXT, _TEXT), max_size=6),
    st.sampled_from(["1.1", "1.0"]),
    st.one_of(st.none(), st.integers(0, 1 << 40)),
    st.booleans(),
    st.booleans(),
)
def test_compiled_and_twin_heads_agree(
    status: int, headers: list[tuple[str, str]], version: str, length: int | None,
    chunked: bool, keep_alive: bool,
) -> None:
    heads_agree(status, headers, version=version, content_length=length, chunked=chunked,
                keep_alive=keep_alive)


# -- one signature in three places ----------------------------------------------------
def test_stub_twin_and_compiled_module_declare_the_same_kernel() -> None:
    import ast
    from pathlib import Path

    from tests.unit.test_kernel_signatures import runtime_signature, stub_signature

    stub = ast.parse((Path(twin.__file__).parent / "_http.pyi").read_text("utf-8"))
    functions = {n.name: n for n in stub.body if isinstance(n, ast.FunctionDef)}
    assert sorted(functions) == ["head", "parse_request"]
    module = compiled()
    assert sorted(module.__all__) == sorted(twin.__all__)
    for name, stub_fn in functions.items():
        want = runtime_signature(getattr(twin, name), annotated=True)
        assert want == stub_signature(stub_fn), name
        got = runtime_signature(getattr(module, name), annotated=False)
        assert [p[:3] for p in got[0]] == [p[:3] for p in want[0]], name
    assert (module.NEED_MORE, module.FALLBACK) == (twin.NEED_MORE, twin.FALLBACK)
