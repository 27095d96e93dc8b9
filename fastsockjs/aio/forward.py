"""The native server's fallback as an ASGI server: every request outside the
SockJS prefixes goes to an ASGI application (a FastAPI or Starlette app, say),
so one process serves both on one port, SockJS at native speed.

``Listener(fallback=forward(app))`` (or simply ``Listener(fallback=app)``: an
ASGI app given as fallback is wrapped when it is set). Responses are streamed
as the application sends them (chunked), plain ones get a Content-Length;
WebSocket routes of the application work too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from fastsockjs.protocol.asgi import (
    ASGI_VERSION,
    ASGIApp,
    ClientDisconnected,
    Message,
    Scope,
)
from fastsockjs.protocol.http import TEXT_PLAIN, Headers, HttpError, Request
from fastsockjs.protocol.websocket import check_handshake


class Spawner(Protocol):
    """What the forwarding bridge needs of the listener: a way to run tasks."""

    def spawn(self, awaitable: Any) -> None: ...

_log = logging.getLogger("fastsockjs.error")

#: Response headers the native server decides itself (framing, connection).
_HOP_BY_HOP = frozenset((b"content-length", b"transfer-encoding", b"connection", b"keep-alive"))
_SERVER_ERROR = HttpError(500, "500 - Internal Server Error")


def forward(app: ASGIApp, **options: Any) -> AsgiFallback:
    """A Listener fallback that hands requests to the ASGI ``app``; see
    :class:`AsgiFallback` for ``options``."""
    return AsgiFallback(app, **options)


class AsgiFallback:
    """Runs an ASGI 3 application behind the native server.

    ``lifespan``: ``"auto"`` (default) sends ``lifespan.startup`` before the
    first request the app gets (an app that does not do lifespan is fine);
    ``"on"`` the same, but a failing startup is an error; ``"off"`` never.
    Call :meth:`startup` before serving to start eagerly, and :meth:`shutdown`
    when stopping (or use ``async with``): the native Listener does not know
    about lifespan. ``root_path`` goes into every scope. ``ws_max_size`` bounds
    incoming WebSocket messages; ``ws_ping`` is (interval, timeout) of the
    keep-alive pings (None: none).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: str = "auto",
        root_path: str = "",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_ping: tuple[float, float] | None = (20.0, 20.0),
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError("lifespan must be 'auto', 'on' or 'off'")
        self.app = app
        self.lifespan = lifespan
        self.root_path = root_path
        self.ws_max_size = ws_max_size
        self.ws_ping = ws_ping
        self.state: dict[str, Any] = {}
        self._started: asyncio.Future[bool] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._inbox: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifespan ----------------------------------------------------------------------
    async def startup(self) -> None:
        """Run the app's lifespan startup (once); raises if it failed."""
        if self.lifespan == "off":
            return
        if self._started is None:
            loop = asyncio.get_running_loop()
            self._started = loop.create_future()
            self._stopped = loop.create_future()
            self._inbox = asyncio.Queue()
            self._inbox.put_nowait({"type": "lifespan.startup"})
            self._task = loop.create_task(self._run_lifespan())
        await asyncio.shield(self._started)

    async def shutdown(self) -> None:
        """Run the app's lifespan shutdown (if startup ran and succeeded)."""
        started, stopped = self._started, self._stopped
        if started is None or stopped is None or self._inbox is None:
            return
        if not started.done() or started.exception() is not None or not started.result():
            return
        if not stopped.done():
            self._inbox.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.shield(stopped)

    async def __aenter__(self) -> AsgiFallback:
        await self.startup()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()

    async def _run_lifespan(self) -> None:
        assert self._inbox is not None and self._started is not None and self._stopped is not None
        started, stopped, inbox = self._started, self._stopped, self._inbox

        async def send(message: Message) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete" and not started.done():
                started.set_result(True)
            elif kind == "lifespan.startup.failed" and not started.done():
                started.set_exception(RuntimeError(
                    "ASGI lifespan startup failed: " + str(message.get("message", ""))))
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                if kind.endswith("failed"):
                    _log.error("ASGI lifespan shutdown failed: %s", message.get("message", ""))
                if not stopped.done():
                    stopped.set_result(None)

        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        loop = asyncio.get_running_loop()
        try:
            await self.app(scope, inbox.get, send)
        except BaseException as exc:
            if loop.is_closed() or isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
                # The loop went away under a lifespan nobody shut down.
                if isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
                    raise
                return
            if not started.done():
                if self.lifespan == "on":
                    started.set_exception(RuntimeError(f"ASGI lifespan startup failed: {exc!r}"))
                else:
                    _log.debug("ASGI application does not support lifespan", exc_info=True)
                    started.set_result(False)
            else:
                _log.exception("ASGI lifespan failed")
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            if not started.done():
                started.set_result(False)
            if not stopped.done():
                stopped.set_result(None)

    # -- requests ------------------------------------------------------------------------
    def handle_exchange(self, request: Request, exchange: Any, listener: Spawner) -> None:
        """Called by the Listener for a request outside every SockJS prefix."""
        listener.spawn(self._serve(request, exchange))

    def __call__(self, request: Request) -> Any:
        raise TypeError("AsgiFallback answers through handle_exchange(), not as a plain fallback")

    async def _serve(self, request: Request, exchange: Any) -> None:
        started = self._started
        if self.lifespan != "off" and (
            started is None or not started.done() or started.exception() is not None
        ):
            try:
                await self.startup()
            except Exception:
                _log.exception("ASGI lifespan startup failed")
                exchange.error(_SERVER_ERROR)
                return
        if request.upgrade and request.headers.get("upgrade", "").lower() == "websocket":
            await self._websocket(request, exchange)
            return
        bridge = _HttpBridge(request, exchange)
        try:
            await self.app(self._scope("http", request, exchange), bridge.receive, bridge.send)
        except Exception:
            if bridge.gone:
                _log.debug("client of %s %s went away", request.method, request.url,
                           exc_info=True)
            else:
                _log.exception("ASGI application failed on %s %s", request.method, request.url)
            bridge.failed()
        else:
            bridge.finished()

    def _scope(self, kind: str, request: Request, exchange: Any) -> Scope:
        raw_path = request.path.encode("latin-1")
        path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
        root = self.root_path
        scope: Scope = {
            "type": kind,
            "asgi": dict(ASGI_VERSION),
            "http_version": request.version,
            "scheme": "http" if kind == "http" else "ws",
            "path": root + path,
            "raw_path": root.encode("latin-1") + raw_path,
            "query_string": request.query.encode("latin-1"),
            "root_path": root,
            "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in request.headers.items()],
            "client": request.remote if request.remote[0] is not None else None,
            "server": _server_addr(exchange),
            "state": dict(self.state),
        }
        if kind == "http":
            scope["method"] = request.method
        else:
            protocols = request.headers.get("sec-websocket-protocol", "")
            scope["subprotocols"] = [p.strip() for p in protocols.split(",") if p.strip()]
            scope["extensions"] = {"websocket.http.response": {}}
        return scope

    async def _websocket(self, request: Request, exchange: Any) -> None:
        try:
            if check_handshake(request) == "hixie76":
                raise HttpError(400, "Only supported WebSocket protocol is RFC 6455.")
        except HttpError as err:
            exchange.error(err)
            return
        bridge = _WebSocketBridge(self, request, exchange)
        try:
            await self.app(self._scope("websocket", request, exchange), bridge.receive, bridge.send)
        except Exception as exc:
            if isinstance(exc, ClientDisconnected):
                _log.debug("WebSocket client of %s went away", request.url, exc_info=True)
            else:
                _log.exception("ASGI application failed on WebSocket %s", request.url)
            bridge.failed()
        else:
            bridge.finished()


def _server_addr(exchange: Any) -> tuple[str, int] | None:
    transport = getattr(getattr(exchange, "proto", None), "transport", None)
    if transport is None:
        return None
    sock = transport.get_extra_info("sockname")
    if isinstance(sock, tuple) and len(sock) >= 2:
        return (str(sock[0]), int(sock[1]))
    return None


def _response_headers(raw: Any) -> Headers:
    return [
        (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
        for k, v in raw or ()
        if bytes(k).lower() not in _HOP_BY_HOP
    ]


class _HttpBridge:
    """``receive`` / ``send`` of one http scope, on a native Exchange."""

    __slots__ = ("request", "exchange", "sink", "status", "headers", "body_given", "started",
                 "complete", "gone", "_waiters", "_parts")

    def __init__(self, request: Request, exchange: Any) -> None:
        self.request = request
        self.exchange = exchange
        self.sink: Any = None
        self.status = 200
        self.headers: Headers = []
        self.body_given = False
        self.started = False
        self.complete = False
        self.gone = False
        self._waiters: list[asyncio.Future[None]] = []
        self._parts: list[bytes] = []
        exchange.attach(self)

    # SinkOwner: the native Exchange calls these
    def abort(self) -> None:
        self.gone = True
        self._wake()

    def writable_again(self) -> None:
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _wait(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut

    async def receive(self) -> Message:
        if not self.body_given:
            self.body_given = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        while not (self.gone or self.complete):
            await self._wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.gone:
            # ASGI 2.4: send() after a disconnect raises an OSError.
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            self.headers = _response_headers(message.get("headers"))
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.started or self.complete:
            raise RuntimeError("http.response.body outside a response")
        body = bytes(message.get("body") or b"")
        more = bool(message.get("more_body", False))
        exchange = self.exchange
        if self.request.method == "HEAD":
            # No body, so nothing to stream: answer once the app is done.
            if not more:
                self.complete = True
                exchange.respond(self.status, self.headers, b"")
                self._wake()
            return
        if self.sink is None:
            if not more:
                self.complete = True
                exchange.respond(self.status, self.headers, body)
                self._wake()
                return
            self.sink = exchange.stream(self.status, self.headers)
        sink = self.sink
        if body:
            sink.write(body)
        if not more:
            self.complete = True
            sink.end()
            self._wake()
            return
        while sink.paused and not self.gone:
            await self._wait()

    def failed(self) -> None:
        if self.complete or self.gone:
            return
        self.complete = True
        # Before the head this is a 500; mid-stream the connection is ended.
        self.exchange.error(_SERVER_ERROR)
        self._wake()

    def finished(self) -> None:
        if self.complete or self.gone:
            return
        _log.error("ASGI application returned without completing its response to %s %s",
                   self.request.method, self.request.url)
        self.failed()


class _WebSocketBridge:
    """``receive`` / ``send`` of one websocket scope, on the native WebSocket.

    It is also the WebSocket's application (``on_open / on_text / ...``).
    """

    def __init__(self, owner: AsgiFallback, request: Request, exchange: Any) -> None:
        self.owner = owner
        self.request = request
        self.exchange = exchange
        self.ws: Any = None
        self.state = "connecting"  # -> open -> closed; or denied
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self._denial: tuple[int, Headers, list[bytes]] | None = None
        self._reading_paused = False
        self._waiters: list[asyncio.Future[None]] = []
        self._warned = False

    # -- WebSocket application interface (the native WebSocket calls these) ---------
    def on_open(self, ws: Any) -> None:
        self.ws = ws
        self.state = "open"

    def on_text(self, text: str) -> None:
        self._deliver({"type": "websocket.receive", "text": text})

    def on_binary(self, data: bytes) -> None:
        self._deliver({"type": "websocket.receive", "bytes": data})

    def on_closed(self) -> None:
        if self.state != "closed":
            self.state = "closed"
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1005})
        self._wake()

    def writable_again(self) -> None:
        self._wake()

    def _deliver(self, message: Message) -> None:
        self.inbox.put_nowait(message)
        if self.inbox.qsize() > 64 and not self._reading_paused and self.ws is not None:
            # The application is not keeping up: stop reading the socket.
            self._reading_paused = True
            self.ws.transport.pause_reading()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- ASGI ------------------------------------------------------------------------
    async def receive(self) -> Message:
        message = await self.inbox.get()
        if self._reading_paused and self.inbox.qsize() < 16 and self.state == "open":
            self._reading_paused = False
            self.ws.transport.resume_reading()
        if message["type"] == "websocket.disconnect":
            # Every later receive() says the same.
            self.inbox.put_nowait(message)
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.state == "connecting":
            if kind == "websocket.accept":
                if (message.get("subprotocol") or message.get("headers")) and not self._warned:
                    self._warned = True
                    _log.warning("native server: websocket.accept subprotocol/headers are "
                                 "not sent (%s)", self.request.path)
                self.exchange.upgrade(self, self.owner.ws_max_size, ping=self.owner.ws_ping)
                return
            if kind == "websocket.close":
                self._deny(403, [("Content-Type", TEXT_PLAIN)], b"")
                return
            if kind == "websocket.http.response.start":
                self._denial = (int(message["status"]), _response_headers(message.get("headers")),
                                [])
                self.state = "denied"
                return
            raise RuntimeError(f"unexpected ASGI message {kind!r} before websocket.accept")
        if self.state == "denied" and self._denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"unexpected ASGI message {kind!r} in a denial response")
            self._denial[2].append(bytes(message.get("body") or b""))
            if not message.get("more_body", False):
                status, headers, parts = self._denial
                self._denial = None
                self._deny(status, headers, b"".join(parts))
            return
        if self.state != "open":
            raise ClientDisconnected()
        ws = self.ws
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                ws.send_text(text)
            else:
                data = bytes(message.get("bytes") or b"")
                if not ws.close_sent:
                    write = getattr(ws, "_write", None) or ws.transport.write
                    write(ws.codec.binary(data))
            while ws.paused and self.state == "open":
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut
        elif kind == "websocket.close":
            ws.close(int(message.get("code") or 1000), str(message.get("reason") or ""))
            self.state = "closed"
            self.inbox.put_nowait({"type": "websocket.disconnect",
                                   "code": int(message.get("code") or 1000)})
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _deny(self, status: int, headers: Headers, body: bytes) -> None:
        self.state = "closed"
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})
        self.exchange.respond(status, headers, body)

    def failed(self) -> None:
        if self.state == "open":
            self.ws.close(1011, "")
            self.state = "closed"
        elif self.state in ("connecting", "denied"):
            self.state = "closed"
            self.exchange.error(_SERVER_ERROR)

    def finished(self) -> None:
        if self.state == "open":
            self.ws.close(1000, "")
            self.state = "closed"
        elif self.state in ("connecting", "denied"):
            _log.error("ASGI application returned without accepting or refusing %s",
                       self.request.path)
            self.state = "closed"
            self.exchange.error(_SERVER_ERROR)
