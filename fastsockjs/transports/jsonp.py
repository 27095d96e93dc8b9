"""``jsonp`` polling and ``jsonp_send``: frames as ``/**/callback("frame");``."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastsockjs.frames import unquote_plus, wrap_js_string
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
from fastsockjs.transports.htmlfile import callback_param

_CALL_END = b");\r\n"
_FORM = "application/x-www-form-urlencoded"


class JsonpReceiver(StreamReceiver):
    __slots__ = ("call",)
    protocol = "jsonp-polling"

    def __init__(self, sink: object, callback: str) -> None:
        super().__init__(sink, 1)  # type: ignore[arg-type]
        # The leading comment defuses the Flash "Rosetta" JSONP attack.
        self.call = ("/**/" + callback + "(").encode("utf-8")

    def encode(self, frame: str) -> bytes:
        # The frame as a JS string literal ('<' escaped, as htmlfile's).
        return wrap_js_string(self.call, frame, _CALL_END)


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
    ctype = request.headers.get("content-type", "")
    # (A browser's form post names the type exactly: no normalising needed.)
    if ctype == _FORM or ctype.split(";")[0].strip().lower() == _FORM:
        if text[:2] == "d=" and "&" not in text:
            # sockjs-client's form: the one field d (what parse_qs would find).
            text = unquote_plus(text[2:])
        else:
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
