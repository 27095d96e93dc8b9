"""``htmlfile``: a forever-loading HTML page calling ``p(frame)`` in script blocks."""

from __future__ import annotations

import re

from fastsockjs.frames import wrap_js_string
from fastsockjs.protocol.http import TEXT_HTML, Headers, HttpError, Request
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.base import (
    Endpoint,
    Exchange,
    RouteSpec,
    StreamReceiver,
    open_session,
)

CALLBACK_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")

_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


def prelude(callback: str) -> bytes:
    page = _HEAD % callback
    # Safari parses nothing before 1 KiB has arrived.
    return (page + " " * max(0, 1024 - len(page) + 13) + "\r\n\r\n").encode("utf-8")


def callback_param(request: Request) -> str:
    """The validated ``c`` (or ``callback``) parameter; 500 otherwise."""
    query = request.query
    # What sockjs-client sends, a valid ``c=<name>`` alone, is its own value
    # (the name has nothing to decode): no query parsing.
    if query[:2] == "c=" and CALLBACK_RE.fullmatch(query, 2):
        return query[2:]
    callback = request.param("c")
    if callback is None:
        callback = request.param("callback")
    if callback is None:
        raise HttpError(500, '"callback" parameter required')
    if not CALLBACK_RE.fullmatch(callback):
        raise HttpError(500, 'invalid "callback" parameter')
    return callback


_SCRIPT_OPEN = b"<script>\np("
_SCRIPT_CLOSE = b");\n</script>\r\n"


class HtmlFileReceiver(StreamReceiver):
    __slots__ = ()
    protocol = "htmlfile"

    def encode(self, frame: str) -> bytes:
        # The frame as a JS string literal, '<' escaped so that "</script>"
        # can never end the block.
        return wrap_js_string(_SCRIPT_OPEN, frame, _SCRIPT_CLOSE)


def htmlfile(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    callback = callback_param(request)
    headers: Headers = [("Content-Type", TEXT_HTML)]
    endpoint.session_headers(request, headers, cors=False)
    session = open_session(endpoint, route)
    sink = exchange.stream(200, headers)
    sink.write(prelude(callback))
    session.attach(HtmlFileReceiver(sink, endpoint.options.response_limit), request)


ROUTES = (RouteSpec("htmlfile", htmlfile, ("GET",), ("htmlfile",)),)
