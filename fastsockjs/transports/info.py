"""The endpoints outside sessions: greeting, ``/info``, ``/iframe*.html``, and
the CORS preflight answers."""

from __future__ import annotations

import hashlib
import json
import secrets

from fastsockjs.protocol.http import (
    APPLICATION_JSON,
    ONE_YEAR,
    TEXT_HTML,
    TEXT_PLAIN,
    Headers,
    Request,
    cache_for_a_year,
    cors_headers,
    jsessionid_header,
    no_cache,
)
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.base import Endpoint, Exchange, RouteSpec

GREETING = b"Welcome to SockJS!\n"

IFRAME_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def iframe_page(sockjs_url: str) -> tuple[bytes, str]:
    """The iframe page and its ETag (stable: a digest of the content)."""
    body = IFRAME_TEMPLATE.format(sockjs_url=sockjs_url).encode("utf-8")
    return body, '"' + hashlib.md5(body).hexdigest() + '"'


def greeting(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    exchange.respond(200, [("Content-Type", TEXT_PLAIN)], GREETING)


def info(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    options = endpoint.options
    data: dict[str, object] = {"websocket": options.websocket_enabled}
    if not options.disable_cors:
        data["origins"] = ["*:*"]
    data["cookie_needed"] = bool(options.jsessionid)
    data["entropy"] = secrets.randbits(32)
    headers: Headers = [("Content-Type", APPLICATION_JSON)]
    no_cache(headers)
    cors_headers(request, headers, options)
    exchange.respond(200, headers, json.dumps(data).encode("ascii"))


def _preflight(endpoint: Endpoint, request: Request, exchange: Exchange, methods: str) -> None:
    headers: Headers = []
    jsessionid_header(request, endpoint.options.jsessionid, headers)
    cors_headers(request, headers, endpoint.options)
    cache_for_a_year(headers)
    headers.append(("Access-Control-Allow-Methods", methods))
    headers.append(("Access-Control-Max-Age", str(ONE_YEAR)))
    exchange.respond(204, headers)


def info_options(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    _preflight(endpoint, request, exchange, "OPTIONS, GET")


def session_options(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    _preflight(endpoint, request, exchange, "OPTIONS, POST")


def iframe(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    body, etag = endpoint.iframe_page()
    headers: Headers = []
    cache_for_a_year(headers)
    if request.headers.get("if-none-match") == etag:
        exchange.respond(304, headers)
        return
    headers.append(("Content-Type", TEXT_HTML))
    headers.append(("ETag", etag))
    exchange.respond(200, headers, body)


# Answered on every mount, whatever transports are enabled.
ROUTES = (
    RouteSpec("greeting", greeting, session=False),
    RouteSpec("info", info, session=False),
    RouteSpec("info_options", info_options, session=False),
    RouteSpec("iframe", iframe, session=False),
    RouteSpec("options", session_options, session=False),
)
