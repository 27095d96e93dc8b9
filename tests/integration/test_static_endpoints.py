"""Greeting, 404/405, the iframe page and /info, on both event loops."""

from __future__ import annotations

import json
import re

from tests.helpers import ServerThread, request

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


def ctype(r) -> str:  # type: ignore[no-untyped-def]
    return (r["content-type"] or "").replace(" ", "")


def test_greeting_with_and_without_slash(ts: ServerThread) -> None:
    for path in ("/echo", "/echo/"):
        r = request(ts.port, "GET", path)
        assert r.status == 200
        assert ctype(r) == "text/plain;charset=UTF-8"
        assert r.body == b"Welcome to SockJS!\n"
        assert r["set-cookie"] is None


def test_unknown_paths_under_prefix_are_404(ts: ServerThread) -> None:
    for suffix in ("/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"):
        assert request(ts.port, "GET", "/echo" + suffix).status == 404, suffix


def test_paths_outside_every_prefix_go_to_fallback(ts: ServerThread) -> None:
    assert request(ts.port, "GET", "/nothing-here").status == 404
    # A prefix must match a whole path segment.
    assert request(ts.port, "GET", "/echoes").status == 404


def test_wrong_method_is_bare_405_with_allow(ts: ServerThread) -> None:
    r = request(ts.port, "POST", "/echo/0/0/websocket")
    assert r.status == 405
    assert r["content-type"] is None
    assert r["allow"] == "GET"
    assert r.body == b""
    r = request(ts.port, "GET", "/echo/abc/abc/xhr")
    assert r.status == 405
    assert "POST" in (r["allow"] or "")


IFRAME_RE = re.compile(
    r'^<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv="X-UA-Compatible" content="IE=edge" />'
    r'\n  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />\n'
    r'  <script src="(?P<url>[^"]*)"></script>\n  <script>\n    document.domain = document.domain;'
    r"\n    SockJS.bootstrap_iframe\(\);\n  </script>\n</head>\n<body>\n  <h2>Don't panic!</h2>"
    r"\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>$"
)


def test_iframe_page_and_its_variants(ts: ServerThread) -> None:
    for suffix in ("/iframe.html", "/iframe-a.html", "/iframe-.html", "/iframe-0.1.2.html",
                   "/iframe-0.1.2abc-dirty.2144.html", "/iframe-a.html?t=1234"):
        r = request(ts.port, "GET", "/echo" + suffix)
        assert r.status == 200, suffix
        assert ctype(r) == "text/html;charset=UTF-8"
        assert "public" in (r["cache-control"] or "")
        assert re.search(r"max-age=[1-9][0-9]{6}", r["cache-control"] or "")
        assert r["expires"] and r["etag"]
        assert r["last-modified"] is None
        m = IFRAME_RE.match(r.text.strip())
        assert m, r.text
        assert m.group("url") == "http://127.0.0.1/static/sockjs.min.js"


def test_iframe_bad_names_are_404(ts: ServerThread) -> None:
    for suffix in ("/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME", "/iframe.HTML",
                   "/iframe.xml", "/iframe-/.html"):
        assert request(ts.port, "GET", "/echo" + suffix).status == 404, suffix


def test_iframe_etag_is_stable_and_honours_if_none_match(ts: ServerThread) -> None:
    r1 = request(ts.port, "GET", "/echo/iframe.html")
    r2 = request(ts.port, "GET", "/echo/iframe.html")
    assert r1["etag"] == r2["etag"]
    r = request(ts.port, "GET", "/echo/iframe.html", headers={"If-None-Match": r1["etag"] or ""})
    assert r.status == 304
    assert r["content-type"] is None
    assert r.body == b""


def test_info(ts: ServerThread) -> None:
    r = request(ts.port, "GET", "/echo/info", headers={"Origin": "test"})
    assert r.status == 200
    assert ctype(r) == "application/json;charset=UTF-8"
    assert r["cache-control"] == NO_CACHE
    assert r["expires"] is None and r["set-cookie"] is None
    assert r["access-control-allow-origin"] == "test"
    assert r["access-control-allow-credentials"] == "true"
    data = json.loads(r.body)
    assert data["websocket"] is True
    assert data["cookie_needed"] is False
    assert data["origins"] == ["*:*"]
    assert isinstance(data["entropy"], int) and 0 <= data["entropy"] < 2**32


def test_info_entropy_changes(ts: ServerThread) -> None:
    values = {json.loads(request(ts.port, "GET", "/echo/info").body)["entropy"] for _ in range(4)}
    assert len(values) > 1


def test_info_without_origin_is_star_without_credentials(ts: ServerThread) -> None:
    r = request(ts.port, "GET", "/echo/info")
    assert r["access-control-allow-origin"] == "*"
    assert r["access-control-allow-credentials"] is None


def test_info_preflight(ts: ServerThread) -> None:
    for origin in ("test", "null"):
        r = request(ts.port, "OPTIONS", "/echo/info",
                    headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
        assert r.status == 204
        assert r.body == b""
        assert "public" in (r["cache-control"] or "")
        assert int(r["access-control-max-age"] or 0) >= 31536000
        assert r["expires"]
        assert r["access-control-allow-methods"] == "OPTIONS, GET"
        assert r["access-control-allow-origin"] == origin
        assert r["access-control-allow-credentials"] == "true"


def test_info_reports_disabled_websocket_and_cookie_needed(ts: ServerThread) -> None:
    assert json.loads(request(ts.port, "GET", "/disabled_websocket_echo/info").body)[
        "websocket"] is False
    r = request(ts.port, "GET", "/cookie_needed_echo/info")
    assert json.loads(r.body)["cookie_needed"] is True
    assert r["set-cookie"] is None


def test_disabled_websocket_endpoints_are_404(ts: ServerThread) -> None:
    assert request(ts.port, "GET", "/disabled_websocket_echo/0/0/websocket").status == 404
    assert request(ts.port, "GET", "/disabled_websocket_echo/websocket").status == 404
