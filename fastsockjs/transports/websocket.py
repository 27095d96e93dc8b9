"""``websocket`` (SockJS framing over one WebSocket) and raw ``/websocket``.

A SockJS WebSocket session lives exactly as long as its connection: it has no
session id, so two connections to the same URL are two sessions.
"""

from __future__ import annotations

from typing import Any

from fastsockjs import frames
from fastsockjs.protocol.http import HttpError, Request
from fastsockjs.protocol.routing import Route
from fastsockjs.protocol.session import OUTBOX_FULL, Drainable, ReadyState, Session
from fastsockjs.protocol.websocket import CLOSE_UNSUPPORTED, check_handshake
from fastsockjs.transports.base import Endpoint, Exchange, RouteSpec

BROKEN_FRAMING = (3000, "Broken framing.")


class WebSocketReceiver:
    """The session's receiver on a WebSocket; also the socket's application."""

    __slots__ = ("ws", "flow", "session", "done", "request", "_session")

    protocol = "websocket"
    delay_disconnect = False

    def __init__(self, session: Session, request: Request) -> None:
        self.ws: Any = None
        self.session: Session | None = None
        self.done = False
        self.request = request
        self._session = session

    # -- WebSocket application interface (called by the I/O layer) -----------
    def on_open(self, ws: Any) -> None:
        self.ws = ws
        self.flow = ws.flow
        self._session.attach(self, self.request)

    def on_text(self, text: str) -> None:
        session = self.session
        if session is None:
            return
        try:
            messages = frames.decode_ws_message(text)
        except ValueError:
            self.fail(*BROKEN_FRAMING)
            return
        if messages:
            session.receive_many(messages)

    def on_binary(self, data: bytes) -> None:
        # SockJS frames are JSON text; binary can only be a broken client.
        self.fail(*BROKEN_FRAMING)

    def on_closed(self) -> None:
        """The socket closed (either side, or the network)."""
        # Let go of the socket at once: the session may outlive it.
        self.ws = None
        self.flow = None
        if self.done:
            return
        self.done = True
        session = self.session
        if session is not None:
            session.detach(self)

    # -- Receiver interface (called by the session) --------------------------
    @property
    def paused(self) -> bool:
        return bool(self.ws is not None and self.ws.paused)

    @property
    def buffered(self) -> int:
        return self.ws.buffered if self.ws is not None else 0

    def writable_again(self) -> None:
        session = self.session
        if session is not None:
            session.wake_drainers()

    def send_frame(self, frame: str) -> None:
        if not self.done:
            self.ws.send_text(frame)

    def send_messages(self, quoted: list[str]) -> None:
        if self.done:
            return
        ws = self.ws
        codec = ws.codec  # None where the host's WebSocket only sends text (ASGI)
        session = self.session
        key = codec.frame_key if codec is not None else None
        if len(quoted) == 1 and key is not None and codec is not None and session is not None:
            # A broadcast hands every session the same quoted object: the WebSocket
            # frame is built (and compressed) once, for the first of the sessions
            # whose codecs build the same bytes, and reused by the others.
            host = session.host
            message = quoted[0]
            cached = host.frame_cache
            if cached[0] is message and cached[1] is key:
                data = cached[2]
            else:
                data = codec.text("a[" + message + "]")
                host.frame_cache = (message, key, data)
            ws.send_encoded(data)
            return
        ws.send_text("a[" + ",".join(quoted) + "]")

    def heartbeat(self) -> None:
        self.send_frame("h")

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        session = self.session
        if session is not None:
            session.detach(self)
        self.ws.close(1000, "Normal closure")

    def fail(self, code: int, reason: str) -> None:
        """Close the session with ``c[code,reason]`` and drop the connection."""
        session = self.session
        if session is not None:
            session.fail(code, reason)
        if not self.done:
            self.ws.send_text(frames.close_frame(code, reason))
            self.done = True
            if session is not None:
                session.detach(self)
            self.ws.abort()



def sockjs_websocket(
    endpoint: Endpoint, request: Request, exchange: Exchange, route: Route
) -> None:
    kind = check_handshake(request)
    if kind == "rfc6455":
        _negotiate(endpoint, request)
    session = endpoint.new_ws_session()
    exchange.upgrade(
        WebSocketReceiver(session, request),
        endpoint.options.max_message_size,
        hixie76=kind == "hixie76",
        ping=_ping(endpoint),
    )


def _negotiate(endpoint: Endpoint, request: Request) -> None:
    """permessage-deflate, when enabled and offered: the I/O layer's 101 answer
    and codec take what was agreed from ``request.ws_deflate``."""
    deflate = endpoint.ws_deflate
    if deflate is not None:
        offer = request.headers.get("sec-websocket-extensions")
        if offer:
            request.ws_deflate = deflate.negotiate(offer)


def _ping(endpoint: Endpoint) -> tuple[float, float] | None:
    interval = endpoint.options.ws_ping_interval
    return None if interval is None else (interval, endpoint.options.ws_ping_timeout)


class RawSession(Drainable):
    """A raw WebSocket session: plain text messages, no SockJS framing."""

    __slots__ = ("host", "state", "connection", "ws", "request", "__weakref__")

    def __init__(self, host: Any, request: Request) -> None:
        self.host = host
        self.state = ReadyState.CONNECTING
        self.request = request
        self.ws: Any = None
        self._waiters: list[Any] | None = None
        self.connection = host.new_connection(self)

    # WebSocket application interface
    def on_open(self, ws: Any) -> None:
        self.ws = ws
        self.state = ReadyState.OPEN
        self.host.raw_opened(self)
        self.connection.fill(self.request, "websocket-raw", self.host.prefix)
        self.host.opened(self.connection)

    def on_text(self, text: str) -> None:
        if self.state is ReadyState.OPEN:
            self.host.messages_in += 1
            self.connection.emit("data", text)

    def on_binary(self, data: bytes) -> None:
        self.close(CLOSE_UNSUPPORTED, "Text messages only.")

    def on_closed(self) -> None:
        if self.state is ReadyState.CLOSED:
            return
        self.state = ReadyState.CLOSED
        self.ws = None  # the application may keep its Connection: not the socket
        self.host.raw_closed(self)
        self.wake_drainers()
        self.connection.emit("close")
        self.connection.remove_all_listeners()

    # Connection interface
    def write_quoted(self, quoted: str, text: str) -> bool:
        return self.send(text)  # raw sessions send plain text

    @property
    def queued_bytes(self) -> int:
        ws = self.ws
        return int(ws.buffered) if ws is not None else 0

    def send(self, message: str) -> bool:
        if self.state is not ReadyState.OPEN:
            return False
        ws = self.ws
        host = self.host
        # Raw sessions have no outbox: the socket buffer is the queue to bound.
        if ws.paused and ws.buffered + len(message) > host.max_outbox_bytes:
            host.dropped += 1
            if not host.drop_when_full:
                self.close(*OUTBOX_FULL)
            return False
        host.messages_out += 1
        ws.send_text(message)
        return True

    def close(self, code: int = 1000, reason: str = "Normal closure") -> bool:
        if self.state is not ReadyState.OPEN:
            return False
        self.state = ReadyState.CLOSING
        self.ws.close(code, reason)
        return True

    def expire(self) -> None:
        """End now (shutdown): drop the socket; ``'close'`` follows from it."""
        if self.ws is not None:
            self.ws.abort()
        self.on_closed()

    @property
    def drained(self) -> bool:
        return self.state is ReadyState.CLOSED or not self.ws.paused

    def writable_again(self) -> None:
        self.wake_drainers()



def raw_websocket(endpoint: Endpoint, request: Request, exchange: Exchange, route: Route) -> None:
    if check_handshake(request) == "hixie76":
        raise HttpError(400, "Only supported WebSocket protocol is RFC 6455.")
    _negotiate(endpoint, request)
    exchange.upgrade(
        RawSession(endpoint.raw_host(), request),
        endpoint.options.max_message_size,
        ping=_ping(endpoint),
    )


ROUTES = (
    RouteSpec("websocket", sockjs_websocket, ("GET",), ("websocket",)),
    RouteSpec("raw_websocket", raw_websocket, ("GET",), ("websocket-raw",), session=False),
)

__all__ = ["ROUTES", "RawSession", "WebSocketReceiver", "raw_websocket", "sockjs_websocket"]
