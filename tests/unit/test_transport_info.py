"""transports/info.py: greeting, /info, the preflights and the iframe page, on a
fake exchange and a real Mount (no session involved)."""

from __future__ import annotations

import json

import pytest

from fastsockjs.protocol.http import APPLICATION_JSON, NO_CACHE, ONE_YEAR, TEXT_HTML, TEXT_PLAIN
from fastsockjs.transports.base import Handler
from fastsockjs.transports.info import (
    GREETING,
    greeting,
    iframe,
    iframe_page,
    info,
    info_options,
    session_options,
)
from tests.unit.fakes import Mounted

ORIGIN = {"origin": "https://a.test"}


def test_greeting() -> None:
    ex = Mounted().call(greeting, "GET", "/echo")
    assert (ex.status, ex.headers, ex.body) == (200, [("Content-Type", TEXT_PLAIN)], GREETING)
    assert GREETING == b"Welcome to SockJS!\n"


def test_info_says_what_the_client_needs() -> None:
    ex = Mounted().call(info, "GET", "/echo/info", headers=ORIGIN)
    assert ex.status == 200
    assert ex.headers == [
        ("Content-Type", APPLICATION_JSON),
        ("Cache-Control", NO_CACHE),
        ("Access-Control-Allow-Origin", "https://a.test"),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]
    data = json.loads(ex.body)
    assert list(data) == ["websocket", "origins", "cookie_needed", "entropy"]
    assert data["websocket"] is True and data["origins"] == ["*:*"]
    assert data["cookie_needed"] is False
    assert type(data["entropy"]) is int and 0 <= data["entropy"] < 2**32


def test_info_entropy_changes_per_answer() -> None:
    m = Mounted()
    values = {json.loads(m.call(info, "GET", "/echo/info").body)["entropy"] for _ in range(8)}
    assert len(values) > 1


def test_info_follows_the_options() -> None:
    ex = Mounted(websocket=False, jsessionid=True, disable_cors=True).call(
        info, "GET", "/echo/info", headers=ORIGIN)
    data = json.loads(ex.body)
    assert data["websocket"] is False and data["cookie_needed"] is True
    assert "origins" not in data
    assert ex.headers == [("Content-Type", APPLICATION_JSON), ("Cache-Control", NO_CACHE)]


@pytest.mark.parametrize(("handler", "methods"), [
    (info_options, "OPTIONS, GET"),
    (session_options, "OPTIONS, POST"),
])
def test_preflights_are_cached_for_a_year(handler: Handler, methods: str) -> None:
    m = Mounted(jsessionid=True)
    ex = m.call(handler, "OPTIONS", "/echo/x",
                headers={**ORIGIN, "access-control-request-headers": "Content-Type"})
    assert (ex.status, ex.body) == (204, b"")
    names = [k for k, _ in ex.headers]
    assert names == [
        "Set-Cookie",
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Credentials",
        "Vary",
        "Access-Control-Allow-Headers",
        "Cache-Control",
        "Expires",
        "Access-Control-Allow-Methods",
        "Access-Control-Max-Age",
    ]
    assert ex.header("Set-Cookie") == "JSESSIONID=dummy; path=/"
    assert ex.header("Access-Control-Allow-Headers") == "Content-Type"
    assert ex.header("Cache-Control") == f"public, max-age={ONE_YEAR}"
    assert str(ex.header("Expires")).endswith(" GMT")
    assert ex.header("Access-Control-Allow-Methods") == methods
    assert ex.header("Access-Control-Max-Age") == str(ONE_YEAR)


def test_the_iframe_page_loads_the_configured_client_and_is_cached_by_etag() -> None:
    m = Mounted(sockjs_url="https://cdn.test/sockjs.min.js")
    ex = m.call(iframe, "GET", "/echo/iframe.html")
    body, etag = iframe_page("https://cdn.test/sockjs.min.js")
    assert (ex.status, ex.body) == (200, body)
    assert b'<script src="https://cdn.test/sockjs.min.js"></script>' in body
    assert ex.header("Content-Type") == TEXT_HTML and ex.header("ETag") == etag
    assert ex.header("Cache-Control") == f"public, max-age={ONE_YEAR}"
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    again = m.call(iframe, "GET", "/echo/iframe.html", headers={"if-none-match": etag})
    assert (again.status, again.body) == (304, b"")
    assert again.header("Content-Type") is None and again.header("ETag") is None
    stale = m.call(iframe, "GET", "/echo/iframe.html", headers={"if-none-match": '"old"'})
    assert stale.status == 200


def test_the_etag_follows_the_content() -> None:
    assert iframe_page("a.js")[1] != iframe_page("b.js")[1]
    assert iframe_page("a.js") == iframe_page("a.js")
