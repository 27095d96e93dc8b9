"""SockJS as an ASGI 3 application.

The transports are the very same handlers the native server runs
(``fastsockjs.transports.HANDLERS``, reached through the engine's dispatch):
only the Exchange / Sink they answer through is different. Here it turns
``respond`` into ``http.response.start`` + ``http.response.body``, ``stream``
into a streamed body (``more_body=True`` chunks, client disconnects noticed
through ``http.disconnect``) and ``upgrade`` into the ``websocket`` scope's
``websocket.accept``, ``websocket.send`` and ``websocket.close``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastsockjs.engine.core import NOT_FOUND_BODY, Engine, Found
from fastsockjs.engine.mount import Mount
from fastsockjs.options import Options
from fastsockjs.protocol.asgi import (
    HIGH_WATER,
    LOW_WATER,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    encode_headers,
    paths,
    request_from_scope,
)
from fastsockjs.protocol.http import (
    TEXT_PLAIN,
    Headers,
    HttpError,
    Request,
    TrustedProxies,
    error_response,
    log_access,
)
from fastsockjs.transports.base import SinkOwner

if TYPE_CHECKING:
    from fastsockjs.server import Server

_log = logging.getLogger("fastsockjs.error")
_access = logging.getLogger("fastsockjs.access")


def _log_access(request: Request | None, started: float, status: int, note: str = "") -> None:
    """The access line the native server writes, for a request SockJSApp answered."""
    if request is not None and _access.isEnabledFor(logging.INFO):
        log_access(_access, request, status, (time.monotonic() - started) * 1000, note)

_SERVER_ERROR = HttpError(500, "500 - Internal Server Error")


class SockJSApp:
    """An ASGI 3 application serving SockJS ``Server``\\ s, each at its prefix.

    Prefixes are matched against the path below the scope's ``root_path``
    (so the app can be mounted anywhere); when none matches there, against
    the full path (so ``app.mount("/echo", SockJSApp(Server(prefix="/echo")))``
    works too). Other requests go to ``fallback`` (an ASGI app) or get 404.
    Lifespan events are handled (and passed on to ``fallback``): shutdown
    closes every session with 1001, as ``Listener.shutdown`` does.

    ``overrides`` replace options of every server mounted here (e.g.
    ``prefix=""``), as ``Server.install_handlers`` does.

    ``handle_signals`` (default on): from the lifespan startup on, the first
    SIGTERM or SIGINT starts the graceful shutdown here first -- every session
    gets its 1001 close frame, polls are still answered -- and passes the
    signal on to the ASGI server's own handler only once that is done (at most
    ``shutdown_timeout`` seconds). uvicorn waits for open connections before it
    runs the lifespan shutdown, so without this it would wait for the clients
    to leave. A second signal is passed on at once. See docs/asgi.md.

    ``forwarded_allow_ips`` is the native Listener's rule for the client's
    address: the ``X-Forwarded-For`` / ``Forwarded`` header of a request whose
    ``scope["client"]`` is one of these proxies names the client; from any
    other peer it is ignored. (An ASGI server may have rewritten
    ``scope["client"]`` already, as uvicorn does for its own
    ``--forwarded-allow-ips``.)
    """

    def __init__(
        self,
        *servers: Server,
        fallback: ASGIApp | None = None,
        max_body: int = 8 * 1024 * 1024,
        shutdown_timeout: float = 5.0,
        handle_signals: bool = True,
        forwarded_allow_ips: str | Iterable[str] | None = None,
        **overrides: Any,
    ) -> None:
        self.engine = Engine()
        self.forwarded = TrustedProxies.parse(forwarded_allow_ips)
        self.handle_signals = handle_signals
        self._shutdown_task: asyncio.Task[None] | None = None
        self._signals: dict[int, Any] = {}
        self._ours: dict[int, Any] = {}
        self.max_body = max_body
        self.fallback = fallback
        self.shutdown_timeout = shutdown_timeout
        # Requests and WebSockets being served now (stats' "connections").
        self.active = 0
        for server in servers:
            server.install_handlers(self, **overrides)

    def mount(self, server: Server, options: Options) -> Mount:
        """Called by ``server.install_handlers(app)``."""
        mount = self.engine.mount(server, options)
        self.max_body = max(self.max_body, options.max_message_size)
        return mount

    def install(self, server: Server, **overrides: Any) -> Mount:
        """Mount one more server (``overrides`` as for ``install_handlers``)."""
        mount: Mount = server.install_handlers(self, **overrides)
        return mount

    @property
    def endpoints(self) -> list[Mount]:
        return self.engine.mounts

    def stats(self) -> dict[str, Any]:
        """The same figures as ``Listener.stats()``; socket bytes are the ASGI
        server's, so they stay 0 here."""
        return {"connections": self.active, "bytes_in": 0, "bytes_out": 0,
                **self.engine.stats()}

    def _bind(self) -> None:
        self.engine.bind(asyncio.get_running_loop())

    async def shutdown(self, timeout: float | None = None) -> None:
        """Close every session (1001 "Server shutting down"), waiting at most
        ``timeout`` seconds for the close frames to go out."""
        self._restore_signals()
        if self.engine.runtime is None:
            return
        task = self._shutdown_task
        if task is not None:  # started by a signal: the same drain
            await asyncio.shield(task)
            return
        await self.engine.shutdown(self.shutdown_timeout if timeout is None else timeout)

    # -- signals (see the class docstring) --------------------------------------------
    def _install_signals(self) -> None:
        if not self.handle_signals or self._signals:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue  # SIG_DFL / SIG_IGN: no server handler to pass the signal to
            self._signals[sig] = previous

            def on_signal(signum: int, frame: Any, previous: Any = previous) -> None:
                if self._shutdown_task is not None:
                    previous(signum, frame)  # a second signal: no more waiting
                    return
                loop.call_soon_threadsafe(self._drain_then_pass_on, signum, previous)

            signal.signal(sig, on_signal)
            self._ours[sig] = on_signal

    def _drain_then_pass_on(self, signum: int, previous: Any) -> None:
        if self._shutdown_task is not None:
            return

        async def drain() -> None:
            try:
                await self.engine.shutdown(self.shutdown_timeout)
            finally:
                self._restore_signals()
                previous(signum, None)

        self._shutdown_task = asyncio.get_running_loop().create_task(drain())

    def _restore_signals(self) -> None:
        signals, self._signals = self._signals, {}
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in signals.items():
            if signal.getsignal(sig) is self._ours.pop(sig, None):  # still ours
                signal.signal(sig, previous)

    # -- ASGI ------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            if self.fallback is not None:
                await self.fallback(scope, receive, send)
            return
        self._bind()
        found = self._find(scope)
        if found is None:
            if self.fallback is not None:
                await self.fallback(scope, receive, send)
            elif kind == "http":
                await _plain_404(send)
            else:
                await _deny_websocket(scope, receive, send, 404)
            return
        endpoint, route, full_path = found
        self.active += 1
        try:
            if kind == "http":
                await self._http(scope, receive, send, endpoint, route, full_path)
            else:
                await self._websocket(scope, receive, send, endpoint, route, full_path)
        finally:
            self.active -= 1

    def _find(self, scope: Scope) -> tuple[Mount, Found, str] | None:
        rel, full = paths(scope)
        # (A WebSocket is routed as the GET it was: request_from_scope says so too.)
        method = str(scope.get("method", "GET")) if scope["type"] == "http" else "GET"
        resolved = self.engine.resolve(method, rel)
        if resolved is None and full != rel:
            resolved = self.engine.resolve(method, full)
        return None if resolved is None else (resolved[0], resolved[1], full)

    def _request(self, scope: Scope, full_path: str, body: bytes = b"") -> Request:
        request = request_from_scope(scope, full_path, body)
        if self.forwarded is not None:
            request.remote = self.forwarded.client(request.remote, request.headers)
        return request

    async def _dispatch(
        self, endpoint: Mount, request: Request, exchange: Any, route: Found
    ) -> None:
        try:
            pending = self.engine.answer(endpoint, request, exchange, route)
        except HttpError as err:
            exchange.error(err)
        except Exception:
            _log.exception("error answering %s %s", request.method, request.url)
            exchange.error(_SERVER_ERROR)
        else:
            if pending is not None:  # an async authorize hook is deciding
                await pending

    # -- http ------------------------------------------------------------------------
    async def _http(
        self, scope: Scope, receive: Receive, send: Send, endpoint: Mount, route: Found,
        full_path: str,
    ) -> None:
        limit = self.max_body
        parts: list[bytes] = []
        size = 0
        too_big = False
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message["type"] != "http.request":
                continue
            chunk = message.get("body") or b""
            if chunk and not too_big:
                size += len(chunk)
                if size > limit:
                    too_big = True
                    parts = []
                else:
                    parts.append(chunk)
            if not message.get("more_body", False):
                break
        request = self._request(scope, full_path, b"".join(parts))
        exchange = HttpExchange(self.engine, request)
        if too_big:
            exchange.error(HttpError(413, "Payload Too Large"))
        else:
            await self._dispatch(endpoint, request, exchange, route)
        await exchange.run(receive, send)

    # -- websocket ---------------------------------------------------------------------
    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, endpoint: Mount, route: Found,
        full_path: str,
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        request = self._request(scope, full_path)
        # The ASGI server owns the handshake and has accepted its key already
        # (Starlette's TestClient sends "testserver=="): the transport's own
        # check must not refuse it again.
        request.headers["sec-websocket-key"] = "AAAAAAAAAAAAAAAAAAAAAA=="
        exchange = WebSocketExchange(self.engine, request)
        await self._dispatch(endpoint, request, exchange, route)
        ws = exchange.ws
        if ws is None:
            await exchange.deny(scope, send)
            return
        await ws.run(receive, send)

    # -- lifespan ----------------------------------------------------------------------
    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen: set[str] = set()

        async def passing_receive() -> Message:
            message = await receive()
            kind = str(message.get("type", ""))
            seen.add(kind)
            if kind == "lifespan.startup":
                self._bind()
                self._install_signals()
            elif kind == "lifespan.shutdown":
                await self.shutdown()
            return message

        async def passing_send(message: Message) -> None:
            seen.add(message.get("type", ""))
            await send(message)

        if self.fallback is not None:
            try:
                await self.fallback(scope, passing_receive, passing_send)
                return
            except Exception:
                if seen & {"lifespan.startup.complete", "lifespan.startup.failed",
                           "lifespan.shutdown"}:
                    raise
                # The fallback does not do lifespan: go on without it.
                _log.debug("fallback application does not support lifespan", exc_info=True)
        if "lifespan.startup" not in seen:
            message = await receive()
            if message.get("type") != "lifespan.startup":
                return
        self._bind()
        self._install_signals()
        await send({"type": "lifespan.startup.complete"})
        while True:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _plain_404(send: Send) -> None:
    await send({
        "type": "http.response.start",
        "status": 404,
        "headers": [(b"content-type", TEXT_PLAIN.encode()),
                    (b"content-length", str(len(NOT_FOUND_BODY)).encode())],
    })
    await send({"type": "http.response.body", "body": NOT_FOUND_BODY})


async def _deny_websocket(scope: Scope, receive: Receive, send: Send, status: int) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    exchange = WebSocketExchange(None, None)
    exchange.respond(status, [("Content-Type", TEXT_PLAIN)], NOT_FOUND_BODY)
    await exchange.deny(scope, send)


def _count_error(engine: Engine | None, status: int) -> None:
    if engine is not None:
        engine.count_error(status)


class HttpExchange:
    """One http-scope request answered by a transport; also the response Sink.

    The transports call it synchronously; ``run`` sends what they queued, in
    order, and watches ``receive`` for the client going away.
    """

    __slots__ = (
        "listener", "request", "done", "_queue", "_buffered", "_high", "_wake", "_owner",
        "_streaming", "_complete", "_gone", "_failed", "_started",
    )

    def __init__(self, listener: Engine, request: Request) -> None:
        self.listener = listener
        self.request = request
        self._started = time.monotonic()
        self.done = False  # the last message is queued
        self._queue: deque[Message] = deque()
        self._buffered = 0
        self._high = False
        self._wake = asyncio.Event()
        self._owner: SinkOwner | None = None
        self._streaming = False
        self._complete = False  # the last message is sent
        self._gone = False
        self._failed = False

    def _push(self, message: Message, size: int = 0) -> None:
        self._queue.append(message)
        if size:
            self._buffered += size
            if self._buffered >= HIGH_WATER:
                self._high = True
        self._wake.set()

    # -- Exchange ------------------------------------------------------------------
    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        if self.done or self._streaming:
            return
        self.done = True
        _log_access(self.request, self._started, status)
        bodyless = status in (204, 304) or status < 200
        raw = encode_headers(headers)
        if not bodyless:
            raw.append((b"content-length", str(len(body)).encode("ascii")))
        self._push({"type": "http.response.start", "status": status, "headers": raw})
        self._push({"type": "http.response.body", "body": b"" if bodyless else body,
                    "more_body": False})

    def error(self, err: HttpError) -> None:
        _count_error(self.listener, err.status)
        if self._streaming and not self.done:
            # Too late for a status line: all we can do is end the connection.
            self.done = True
            self._failed = True
            self._wake.set()
            return
        self.respond(*error_response(err))

    def stream(self, status: int, headers: Headers) -> HttpExchange:
        self._streaming = True
        _log_access(self.request, self._started, status, " (streaming)")
        self._push({"type": "http.response.start", "status": status,
                    "headers": encode_headers(headers)})
        return self

    def upgrade(self, app: Any, max_size: int, hixie76: bool = False,
                ping: tuple[float, float] | None = None) -> Any:
        # Only a websocket scope can be upgraded: this request is plain HTTP.
        raise HttpError(400, 'Can "Upgrade" only to "WebSocket".')

    # -- Sink ----------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._buffered >= HIGH_WATER

    # The session reads ``flow.write_paused`` on every write.
    write_paused = paused

    @property
    def flow(self) -> Any:
        return self

    @property
    def buffered(self) -> int:
        return self._buffered

    def attach(self, owner: SinkOwner) -> None:
        self._owner = owner

    def write(self, data: bytes) -> None:
        if self.done or self._gone or not data:
            return
        self._push({"type": "http.response.body", "body": data, "more_body": True}, len(data))

    def end(self, last: bytes = b"") -> None:
        if self.done:
            return
        self.done = True
        if self._gone:
            last = b""
        self._push({"type": "http.response.body", "body": last, "more_body": False}, len(last))

    def lost(self) -> None:
        """The client went away."""
        if self._gone:
            return
        self._gone = True
        self._wake.set()
        if self.done:
            return
        self.done = True
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.abort()

    def _writable_again(self) -> None:
        owner = self._owner
        if owner is not None:
            owner.writable_again()

    # -- the coroutine that talks to the ASGI server ----------------------------------
    async def run(self, receive: Receive, send: Send) -> None:
        watcher: asyncio.Future[None] | None = None
        queue = self._queue
        try:
            while True:
                while queue and not self._gone:
                    message = queue.popleft()
                    try:
                        await send(message)
                    except Exception:  # the server says the client is gone
                        self.lost()
                        break
                    if message.get("more_body"):
                        self._buffered -= len(message["body"])
                        if self._high and self._buffered <= LOW_WATER:
                            self._high = False
                            self._writable_again()
                    elif message["type"] == "http.response.body":
                        self._complete = True
                if self._complete or self._gone or (self._failed and not queue):
                    return
                if watcher is None:
                    watcher = asyncio.ensure_future(self._watch(receive))
                self._wake.clear()
                if not queue:
                    await self._wake.wait()
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _watch(self, receive: Receive) -> None:
        while not self._gone:
            try:
                message = await receive()
            except Exception:  # a server that raises rather than reports
                message = {"type": "http.disconnect"}
            if message["type"] == "http.disconnect":
                if not self._complete:
                    self.lost()
                return


class _DeadSink:
    """What ``stream`` gives on a websocket scope: the body so far becomes the
    denial response, and the receiver is let go at once."""

    paused = False
    write_paused = False
    buffered = 0

    def __init__(self, exchange: WebSocketExchange) -> None:
        self.exchange = exchange
        self.flow = self
        self._owner: SinkOwner | None = None

    def write(self, data: bytes) -> None:
        self.exchange.body += data

    def end(self, last: bytes = b"") -> None:
        self.exchange.body += last

    def attach(self, owner: SinkOwner) -> None:
        self._owner = owner

    def lost(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.abort()


class WebSocketExchange:
    """One websocket-scope request: ``upgrade`` accepts it; any HTTP answer
    becomes a denial response (``websocket.http.response``) where the server
    offers that extension, a plain refusal (403) otherwise."""

    def __init__(self, listener: Engine | None, request: Request | None) -> None:
        self.listener = listener
        self.request = request
        self._started = time.monotonic()
        self.ws: AsgiWebSocket | None = None
        self.status = 0
        self.headers: Headers = []
        self.body = b""
        self._sink: _DeadSink | None = None

    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        if self.status or self.ws is not None:
            return
        self.status = status
        self.headers = list(headers)
        self.body = body

    def error(self, err: HttpError) -> None:
        _count_error(self.listener, err.status)
        self.respond(*error_response(err))

    def stream(self, status: int, headers: Headers) -> _DeadSink:
        self.respond(status, headers)
        self._sink = _DeadSink(self)
        return self._sink

    def upgrade(self, app: Any, max_size: int, hixie76: bool = False,
                ping: tuple[float, float] | None = None) -> AsgiWebSocket:
        if hixie76:
            raise HttpError(400, "Only supported WebSocket protocol is RFC 6455.")
        # Keep-alive pings are the ASGI server's business (e.g. uvicorn's
        # --ws-ping-interval), so ``ping`` is not used here.
        _log_access(self.request, self._started, 101, " (websocket)")
        self.ws = AsgiWebSocket(app, max_size)
        return self.ws

    async def deny(self, scope: Scope, send: Send) -> None:
        if self._sink is not None:
            self._sink.lost()
        status = self.status or 500
        _log_access(self.request, self._started, status, " (websocket refused)")
        if "websocket.http.response" in (scope.get("extensions") or {}):
            headers = encode_headers(self.headers)
            if status not in (204, 304):
                headers.append((b"content-length", str(len(self.body)).encode("ascii")))
            await send({"type": "websocket.http.response.start", "status": status,
                        "headers": headers})
            await send({"type": "websocket.http.response.body", "body": self.body})
        else:
            await send({"type": "websocket.close", "code": 1008})


class AsgiWebSocket:
    """The I/O side of an accepted websocket scope, as the WebSocket
    applications (``WebSocketReceiver``, ``RawSession``) expect it:
    ``send_text / close / abort / paused / buffered``; received messages go
    to their ``on_text / on_binary``, the end to ``on_closed``."""

    __slots__ = (
        "app", "max_size", "close_sent", "closed", "disconnected", "_aborting", "_queue",
        "_buffered", "_high", "_wake",
    )

    #: No frame codec here: the ASGI server frames what ``send_text`` queues.
    codec = None

    def __init__(self, app: Any, max_size: int) -> None:
        self.app = app
        self.max_size = max_size
        self.close_sent = False
        self.closed = False
        self.disconnected = False
        self._aborting = False
        self._queue: deque[Message] = deque()
        self._buffered = 0
        self._high = False
        self._wake = asyncio.Event()

    @property
    def paused(self) -> bool:
        return self._buffered >= HIGH_WATER

    # The session reads ``flow.write_paused`` on every write.
    write_paused = paused

    @property
    def flow(self) -> Any:
        return self

    @property
    def buffered(self) -> int:
        return self._buffered

    def send_text(self, text: str) -> None:
        if self.close_sent or self._aborting:
            return
        self._queue.append({"type": "websocket.send", "text": text})
        self._buffered += len(text)
        if self._buffered >= HIGH_WATER:
            self._high = True
        self._wake.set()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_sent or self._aborting:
            return
        self.close_sent = True
        self._queue.append({"type": "websocket.close", "code": code, "reason": reason})
        self._wake.set()

    def abort(self) -> None:
        """Drop the connection (after what was written): the ASGI server closes
        the socket when the application returns without a close frame."""
        self._aborting = True
        self._wake.set()

    # -- the coroutines that talk to the ASGI server ---------------------------------
    async def run(self, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "websocket.accept"})
        except Exception:  # gone before the handshake finished
            self._closed()
            return
        try:
            self.app.on_open(self)
        except Exception:
            _log.exception("WebSocket open handler failed")
            self.abort()
        reader = asyncio.ensure_future(self._read(receive))
        queue = self._queue
        try:
            while True:
                while queue and not self.disconnected:
                    message = queue.popleft()
                    try:
                        await send(message)
                    except Exception:  # the client is gone
                        self.disconnected = True
                        break
                    if message["type"] == "websocket.send":
                        self._buffered -= len(message["text"])
                        if self._high and self._buffered <= LOW_WATER:
                            self._high = False
                            again = getattr(self.app, "writable_again", None)
                            if again is not None:
                                again()
                if self.disconnected or self._aborting or self.close_sent:
                    if not queue or self.disconnected:
                        return
                    continue
                self._wake.clear()
                if not queue:
                    await self._wake.wait()
        finally:
            reader.cancel()
            self._closed()

    async def _read(self, receive: Receive) -> None:
        app = self.app
        max_size = self.max_size
        while True:
            try:
                message = await receive()
            except Exception:  # a server that raises rather than reports
                message = {"type": "websocket.disconnect"}
            kind = message["type"]
            if kind == "websocket.receive":
                if self.close_sent or self._aborting or self.closed:
                    continue
                text = message.get("text")
                try:
                    if text is not None:
                        if len(text) > max_size or (
                            len(text) * 4 > max_size and len(text.encode("utf-8")) > max_size
                        ):
                            self.close(1009, "message too big")
                        else:
                            app.on_text(text)
                    else:
                        data = message.get("bytes") or b""
                        if len(data) > max_size:
                            self.close(1009, "message too big")
                        else:
                            app.on_binary(data)
                except Exception:
                    _log.exception("WebSocket message handler failed")
            elif kind == "websocket.disconnect":
                self.disconnected = True
                self._closed()
                self._wake.set()
                return

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_sent = True
        self._queue.clear()
        try:
            self.app.on_closed()
        except Exception:
            _log.exception("WebSocket close handler failed")
