"""``jsonp`` polling and ``jsonp_send``: frames as ``/**/callback("frame");``."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastsockjs.protocol.http import APPLICATION_JS, TEXT_PLAIN, Headers, Request
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.base import (
    Endpoint,
    Exchange,
    RouteSpec,
    StreamReceiver,
    body_text,
    decode_body,
    deliver,
    open_session,
)
from fastsockjs.transports.htmlfile import callback_param, js_string


class JsonpReceiver(StreamReceiver):
    __slots__ = ("callback",)
    protocol = "jsonp-polling"

    def __init__(self, sink: object, callback: str) -> None:
        super().__init__(sink, 1)  # type: ignore[arg-type]
        self.callback = callback

    def encode(self, frame: str) -> bytes:
        # The leading comment defuses the Flash "Rosetta" JSONP attack.
        return ("/**/" + self.callback + "(" + js_string(frame) + ");\r\n").encode("utf-8")


def jsonp(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    callback = callback_param(request)
    headers: Headers = [
        ("Content-Type", APPLICATION_JS),
        ("X-Content-Type-Options", "nosniff"),
    ]
    endpoint.session_headers(request, headers, cors=False)
    session = open_session(endpoint, route)
    sink = exchange.stream(200, headers)
    session.attach(JsonpReceiver(sink, callback), request)


def jsonp_send(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    text = body_text(endpoint, request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        form = parse_qs(text, keep_blank_values=True)
        text = form.get("d", [""])[0]
    deliver(endpoint, route, decode_body(text, endpoint.options.max_message_size))
    headers: Headers = [("Content-Type", TEXT_PLAIN)]
    endpoint.session_headers(request, headers, cors=False)
    # Konqueror mishandles 204 here, hence a tiny body.
    exchange.respond(200, headers, b"ok")


ROUTES = (
    RouteSpec("jsonp", jsonp, ("GET",), ("jsonp-polling",)),
    RouteSpec("jsonp_send", jsonp_send, ("POST",), ("jsonp-polling",)),
)
