"""``xhr`` (polling), ``xhr_streaming`` and ``xhr_send``: newline-delimited frames."""

from __future__ import annotations

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

# Old IE needs 2 KiB before it hands a streaming response to the page.
PRELUDE = b"h" * 2048 + b"\n"


class XhrReceiver(StreamReceiver):
    __slots__ = ()

    def encode(self, frame: str) -> bytes:
        return (frame + "\n").encode("utf-8")


class XhrPollingReceiver(XhrReceiver):
    __slots__ = ()
    protocol = "xhr-polling"


class XhrStreamingReceiver(XhrReceiver):
    __slots__ = ()
    protocol = "xhr-streaming"


def xhr_polling(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    headers: Headers = [("Content-Type", APPLICATION_JS)]
    endpoint.session_headers(request, headers)
    session = open_session(endpoint, route)
    sink = exchange.stream(200, headers)
    session.attach(XhrPollingReceiver(sink, 1), request)


def xhr_streaming(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    headers: Headers = [("Content-Type", APPLICATION_JS)]
    endpoint.session_headers(request, headers)
    session = open_session(endpoint, route)
    sink = exchange.stream(200, headers)
    sink.write(PRELUDE)
    session.attach(XhrStreamingReceiver(sink, endpoint.options.response_limit), request)


def xhr_send(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    messages = decode_body(body_text(endpoint, request), endpoint.options.max_message_size)
    deliver(endpoint, route, messages)
    # Firefox treats a 204 without a content type as XML and complains.
    headers: Headers = [("Content-Type", TEXT_PLAIN)]
    endpoint.session_headers(request, headers)
    exchange.respond(204, headers)


_POST = ("POST", "OPTIONS")
ROUTES = (
    RouteSpec("xhr", xhr_polling, _POST, ("xhr-polling",)),
    RouteSpec("xhr_send", xhr_send, _POST,
              ("xhr-polling", "xhr-streaming", "eventsource", "htmlfile")),
    RouteSpec("xhr_streaming", xhr_streaming, _POST, ("xhr-streaming",)),
)
