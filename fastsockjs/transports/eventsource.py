"""``eventsource``: ``data: <frame>\\r\\n\\r\\n`` events on a text/event-stream."""

from __future__ import annotations

from fastsockjs.frames import event_stream_data
from fastsockjs.protocol.http import Headers, Request
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.base import (
    Endpoint,
    Exchange,
    RouteSpec,
    StreamReceiver,
    open_session,
)


class EventSourceReceiver(StreamReceiver):
    __slots__ = ()
    protocol = "eventsource"

    def encode(self, frame: str) -> bytes:
        # '%', CR, LF and NUL percent-escaped: sockjs-client runs decodeURI on
        # every event, and CR, LF and NUL would break the event framing.
        return event_stream_data(frame)


def eventsource(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    headers: Headers = [("Content-Type", "text/event-stream")]
    endpoint.session_headers(request, headers)
    session = open_session(endpoint, route)
    sink = exchange.stream(200, headers)
    # Opera needed one more line break before the first event.
    sink.write(b"\r\n")
    session.attach(EventSourceReceiver(sink, endpoint.options.response_limit), request)


ROUTES = (RouteSpec("eventsource", eventsource, ("GET",), ("eventsource",)),)
