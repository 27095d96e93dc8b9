"""The HTTP connection reads the same whatever parses its requests: any stream of
requests (plain, odd or broken), cut into any pieces, gets the same answers, the
same dispatched requests and the same closing from httptools alone, from the
twin fast parser and from the compiled one in front of it, and from the HTTP
connection as written (``aio/_connection_py.py``) and compiled. (One difference is
left out on purpose: bytes after a request that closes the connection are never
read by the fast path, where httptools reports them as an error; see
test_http_protocol's test of it.)"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsockjs import _http_py
from fastsockjs.aio import _connection_py
from fastsockjs.heads import ParseRequest
from tests.helpers import compiled_connection, compiled_http
from tests.unit.fakes import FakeClock, FakeTransport
from tests.unit.test_http_protocol import FakeListener, echo_path

_PLAIN = [
    b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /b?x=1 HTTP/1.1\r\nHost: h\r\nOrigin: http://o\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS /o HTTP/1.1\r\nHost: h\r\nAccess-Control-Request-Headers: a\r\n\r\n",
]
_ODD = [
    b"POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET /u HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
    b"GET http://h/abs HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /f HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    b"GET /lf HTTP/1.1\nHost: h\n\n",
    b"GET /nohost HTTP/1.1\r\n\r\n",
    b"GET /twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"get /lower HTTP/1.1\r\nHost: h\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /v HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 700 + b"\r\n\r\n",
    b"GET /" + b"l" * 300 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 1500\r\n\r\n" + b"z" * 1500,
    b"POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    b"GET /nul HTTP/1.1\r\nHost: h\x00\r\n\r\n",
    b"NOT HTTP\r\n\r\n",
]


def serve(parse: ParseRequest | None, chunks: list[bytes],
          connection: Any = _connection_py) -> tuple[Any, ...]:
    clock = FakeClock()
    listener = FakeListener(clock, echo_path)
    transport = FakeTransport()
    proto = connection.HttpProtocol(listener, parse)
    proto.connection_made(transport)
    for chunk in chunks:
        if transport.closed:
            break
        proto.data_received(chunk)
    seen = [(r.method, r.url, r.version, r.headers, r.body, r.keep_alive,
             r.error.status if r.error else None) for r in listener.requests]
    # (Not the error counters: after a request that ends the connection httptools
    # goes on parsing and counts the next broken request too, where the fast path
    # stops reading; every error answered is in the bytes written.)
    return transport.data, seen, transport.eof, transport.closed


@st.composite
def streams(draw: Any) -> list[bytes]:
    requests = draw(st.lists(st.one_of(st.sampled_from(_PLAIN), st.sampled_from(_ODD)),
                             min_size=1, max_size=4))
    data = b"".join(requests)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=6))))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(edges) if b > a]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_every_parser_gives_the_same_answers(chunks: list[bytes]) -> None:
    expected = serve(None, chunks)
    assert serve(_http_py.parse_request, chunks) == expected
    compiled_parse = compiled_http.require().parse_request
    assert serve(compiled_parse, chunks) == expected
    # The compiled connection, on httptools alone and behind the compiled parser.
    compiled = compiled_connection.require()
    assert serve(None, chunks, compiled) == expected
    assert serve(compiled_parse, chunks, compiled) == expected
