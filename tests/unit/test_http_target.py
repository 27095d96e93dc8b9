"""The request target and Host checks (fastsockjs/protocol/http.py,
``request_target``), table-driven: RFC 9112 3.2 and 3.2.2."""

from __future__ import annotations

import pytest

from fastsockjs.protocol.http import request_target

ACCEPTED = [
    # target, headers, version, host lines -> routed target, Host seen
    ("/echo/info", {"host": "a"}, "1.1", 1, "/echo/info", "a"),
    ("/echo/info", {"host": "127.0.0.1:8080"}, "1.1", 1, "/echo/info", "127.0.0.1:8080"),
    ("/echo/info", {"host": "[::1]:80"}, "1.1", 1, "/echo/info", "[::1]:80"),
    ("/echo/info", {"host": ""}, "1.1", 1, "/echo/info", ""),  # empty is valid
    ("/echo/info", {}, "1.0", 0, "/echo/info", None),  # HTTP/1.0 needs no Host
    ("*", {"host": "a"}, "1.1", 1, "*", "a"),
    # Absolute form: its authority wins over Host (and stands in for a missing one).
    ("http://ex.test:81/echo/info?x=1", {"host": "other"}, "1.1", 1, "/echo/info?x=1",
     "ex.test:81"),
    ("https://ex.test/echo", {}, "1.1", 0, "/echo", "ex.test"),
    ("HTTP://ex.test", {}, "1.1", 0, "/", "ex.test"),
    ("http://ex.test?q", {}, "1.1", 0, "/?q", "ex.test"),
]


@pytest.mark.parametrize(("target", "headers", "version", "lines", "routed", "host"), ACCEPTED)
def test_accepted(target: str, headers: dict[str, str], version: str, lines: int,
                  routed: str, host: str | None) -> None:
    got, error = request_target(target, headers, version, lines)
    assert error is None
    assert got == routed
    assert headers.get("host") == host


REFUSED = [
    ("/echo/info", {}, "1.1", 0, "missing Host"),
    ("/echo/info", {"host": "a, b"}, "1.1", 2, "more than one Host"),
    ("/echo/info", {"host": "a, a"}, "1.0", 2, "more than one Host"),
    ("/echo/info", {"host": "a b"}, "1.1", 1, "invalid Host"),
    ("/echo/info", {"host": "a/b"}, "1.1", 1, "invalid Host"),
    ("/echo/info", {"host": "a:8x"}, "1.1", 1, "invalid Host"),
    ("ftp://x/echo", {"host": "x"}, "1.1", 1, "invalid request target"),
    ("echo/info", {"host": "x"}, "1.1", 1, "invalid request target"),
    ("http://user@x/echo", {"host": "x"}, "1.1", 1, "invalid request target"),
    ("http://x y/echo", {"host": "x"}, "1.1", 1, "invalid request target"),
]


@pytest.mark.parametrize(("target", "headers", "version", "lines", "why"), REFUSED)
def test_refused_with_400(target: str, headers: dict[str, str], version: str, lines: int,
                          why: str) -> None:
    _, error = request_target(target, headers, version, lines)
    assert error is not None and error.status == 400
    assert why in error.message
