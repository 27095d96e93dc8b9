"""protocol/routing.py: paths below a prefix -> a route, 404 or 405 (sans-I/O, table-driven)."""

from __future__ import annotations

import pytest

from fastsockjs.options import make_options
from fastsockjs.protocol.routing import MethodNotAllowed, NotFound, Route, owns, route
from fastsockjs.transports import ROUTES, SESSION_METHODS, enabled_endpoints
from fastsockjs.transports.base import RouteSpec

ALL = enabled_endpoints(make_options())
NF = NotFound()


def r(kind: str, server: str | None = None, session: str | None = None) -> Route:
    return Route(kind, server, session)


# (method, rest, expected) with every endpoint enabled.
CASES: list[tuple[str, str, Route | NotFound | MethodNotAllowed]] = [
    # greeting
    ("GET", "", r("greeting")),
    ("GET", "/", r("greeting")),
    ("POST", "", MethodNotAllowed(("GET",))),
    ("HEAD", "/", MethodNotAllowed(("GET",))),
    # info and its preflight
    ("GET", "/info", r("info")),
    ("GET", "/info/", r("info")),
    ("OPTIONS", "/info", r("info_options")),
    ("OPTIONS", "/info/", r("info_options")),
    ("POST", "/info", MethodNotAllowed(("GET", "OPTIONS"))),
    ("DELETE", "/info/", MethodNotAllowed(("GET", "OPTIONS"))),
    ("GET", "/info//", NF),
    ("GET", "/infos", NF),
    # iframe pages: any name of the pattern, the trailing slash tolerated
    ("GET", "/iframe.html", r("iframe")),
    ("GET", "/iframe.html/", r("iframe")),
    ("GET", "/iframe-1.0.0.html", r("iframe")),
    ("GET", "/iframe-a_b.min.html", r("iframe")),
    ("POST", "/iframe.html", MethodNotAllowed(("GET",))),
    ("GET", "/iframe.htm", NF),
    ("GET", "/iframeX.html", NF),  # upper case is not part of the pattern
    ("GET", "/iframe", NF),
    ("GET", "/x/iframe.html", NF),
    # raw WebSocket
    ("GET", "/websocket", r("raw_websocket")),
    ("GET", "/websocket/", r("raw_websocket")),
    ("POST", "/websocket", MethodNotAllowed(("GET",))),
    # session endpoints: ids, trailing slash, preflight, wrong methods
    ("POST", "/000/abc/xhr", r("xhr", "000", "abc")),
    ("POST", "/000/abc/xhr/", r("xhr", "000", "abc")),
    ("OPTIONS", "/000/abc/xhr", r("options", "000", "abc")),
    ("GET", "/000/abc/xhr", MethodNotAllowed(("POST", "OPTIONS"))),
    ("POST", "/srv/0-a_b~c/xhr_send", r("xhr_send", "srv", "0-a_b~c")),
    ("OPTIONS", "/1/2/xhr_streaming/", r("options", "1", "2")),
    ("GET", "/1/2/eventsource", r("eventsource", "1", "2")),
    ("POST", "/1/2/eventsource", MethodNotAllowed(("GET",))),
    ("OPTIONS", "/1/2/eventsource", MethodNotAllowed(("GET",))),  # no preflight there
    ("GET", "/1/2/htmlfile", r("htmlfile", "1", "2")),
    ("GET", "/1/2/jsonp", r("jsonp", "1", "2")),
    ("POST", "/1/2/jsonp_send", r("jsonp_send", "1", "2")),
    ("GET", "/1/2/jsonp_send", MethodNotAllowed(("POST",))),
    ("OPTIONS", "/1/2/jsonp_send", MethodNotAllowed(("POST",))),
    ("GET", "/1/2/websocket", r("websocket", "1", "2")),
    ("GET", "/1/2/websocket/", r("websocket", "1", "2")),
    ("POST", "/1/2/websocket", MethodNotAllowed(("GET",))),
    # ids: never empty, never with a dot; three segments exactly
    ("POST", "/000/a.b/xhr", NF),
    ("POST", "/0.0/abc/xhr", NF),
    ("POST", "/000/./xhr", NF),
    ("POST", "//abc/xhr", NF),
    ("POST", "/000//xhr", NF),
    ("POST", "/000/abc/xhr//", NF),
    ("POST", "/000/abc", NF),
    ("POST", "/a/000/abc/xhr", NF),
    ("POST", "/000/abc/unknown", NF),
    ("POST", "/000/abc/XHR", NF),
    ("GET", "/000/abc/info", NF),  # 'info' is not a session endpoint
    ("GET", "/nope", NF),
]


@pytest.mark.parametrize(("method", "rest", "expected"), CASES,
                         ids=[f"{m} {p or '(empty)'}" for m, p, _ in CASES])
def test_route(method: str, rest: str, expected: object) -> None:
    assert route(SESSION_METHODS, ALL, method, rest) == expected


@pytest.mark.parametrize("spec", [s for s in ROUTES if s.session], ids=lambda s: s.kind)
def test_every_session_endpoint_answers_its_methods_and_only_those(spec: RouteSpec) -> None:
    kind = spec.kind
    methods = SESSION_METHODS[kind]
    for method in methods:
        want = "options" if method == "OPTIONS" else kind
        assert route(SESSION_METHODS, ALL, method, f"/s/i/{kind}") == r(want, "s", "i")
    for method in ("GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD"):
        if method not in methods:
            assert route(SESSION_METHODS, ALL, method, f"/s/i/{kind}") == MethodNotAllowed(methods)


@pytest.mark.parametrize("kind", sorted(SESSION_METHODS))
def test_a_disabled_session_endpoint_is_not_found_whatever_the_method(kind: str) -> None:
    enabled = ALL - {kind}
    for method in ("GET", "POST", "OPTIONS", "PUT"):
        assert route(SESSION_METHODS, enabled, method, f"/s/i/{kind}") == NF
    # The others stay up.
    assert all(
        isinstance(route(SESSION_METHODS, enabled, SESSION_METHODS[k][0], f"/s/i/{k}"), Route)
        for k in SESSION_METHODS if k != kind
    )


def test_disabled_transports_turn_their_endpoints_off_through_the_options() -> None:
    enabled = enabled_endpoints(make_options(
        disabled_transports=frozenset({"websocket", "websocket-raw", "jsonp-polling"})))
    assert route(SESSION_METHODS, enabled, "GET", "/s/i/websocket") == NF
    assert route(SESSION_METHODS, enabled, "GET", "/websocket") == NF
    assert route(SESSION_METHODS, enabled, "POST", "/websocket") == NF  # 404, not 405
    assert route(SESSION_METHODS, enabled, "GET", "/s/i/jsonp") == NF
    assert route(SESSION_METHODS, enabled, "POST", "/s/i/jsonp_send") == NF
    # Endpoints without transports are always on.
    assert route(SESSION_METHODS, enabled, "GET", "/info") == r("info")
    assert route(SESSION_METHODS, enabled, "GET", "/iframe.html") == r("iframe")
    assert route(SESSION_METHODS, enabled, "GET", "") == r("greeting")


def test_an_endpoint_unknown_to_the_table_is_not_found_even_if_enabled() -> None:
    assert route({}, {"xhr"}, "POST", "/s/i/xhr") == NF


@pytest.mark.parametrize(("prefix", "path", "owned"), [
    ("/echo", "/echo", True),
    ("/echo", "/echo/", True),
    ("/echo", "/echo/info", True),
    ("/echo", "/echoes", False),
    ("/echo", "/ech", False),
    ("/echo", "/", False),
    ("/a/b", "/a/b/c", True),
    ("/a/b", "/a/bc", False),
    ("", "/anything", True),
])
def test_owns(prefix: str, path: str, owned: bool) -> None:
    assert owns(prefix, path) is owned
