"""``connect()`` and the client's :class:`Connection`: the receive queue, the
send batching, close handling and events, above whichever transport is in use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import Awaitable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from fastsockjs.client import protocol
from fastsockjs.client.errors import (
    CLOSE_LOST,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    ProtocolError,
)
from fastsockjs.client.http import CookieJar, HttpClient
from fastsockjs.client.transports import Transport, WebSocketTransport, XhrTransport
from fastsockjs.events import EventEmitter

_log = logging.getLogger("fastsockjs.client")


class Connection(EventEmitter):
    """One SockJS session, as a client.

    ``await send(text)``, ``await recv()``, ``async for message in conn``,
    ``await close(code, reason)``; events ``'data'`` (each message, when there
    are listeners: then the receive queue is bypassed), ``'heartbeat'`` and
    ``'close'`` (once, no arguments: read ``close_code`` / ``close_reason``).
    """

    __slots__ = (
        "url",
        "transport",
        "info",
        "session_id",
        "server_id",
        "max_queue",
        "max_send_buffer",
        "heartbeat_timeout",
        "send_timeout",
        "heartbeats",
        "close_code",
        "close_reason",
        "_http",
        "_transport",
        "_inbox",
        "_readable",
        "_writable",
        "_outbox",
        "_outbox_bytes",
        "_outbox_ready",
        "_outbox_drained",
        "_closed",
        "_opened",
        "_tasks",
        "_client_closed",
    )

    _aliases = {"message": "data", "end": "close"}

    def __init__(
        self,
        url: str,
        http: HttpClient,
        *,
        max_queue: int,
        max_send_buffer: int,
        heartbeat_timeout: float | None,
        send_timeout: float | None,
    ) -> None:
        super().__init__()
        self.url = url
        self.transport = ""
        self.info: dict[str, Any] = {}
        self.session_id = ""
        self.server_id = ""
        self.max_queue = max_queue
        self.max_send_buffer = max_send_buffer
        self.heartbeat_timeout = heartbeat_timeout
        self.send_timeout = send_timeout
        self.heartbeats = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._http = http
        self._transport: Transport | None = None
        self._inbox: deque[str] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._outbox: list[str] = []
        self._outbox_bytes = 0
        self._outbox_ready = asyncio.Event()
        self._outbox_drained = asyncio.Event()
        self._outbox_drained.set()
        self._closed: ConnectionClosed | None = None
        self._client_closed = False
        self._opened = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.set_spawner(self._spawn_handler)

    def __repr__(self) -> str:
        state = "open" if self._closed is None else f"closed {self.close_code}"
        return f"<sockjs client {self.url} {self.transport} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies held for the service (e.g. a load balancer's JSESSIONID)."""
        return self._http.cookies.cookies

    # -- starting ---------------------------------------------------------------------------
    def _start_task(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_handler(self, awaitable: Any) -> None:
        # A coroutine 'data' / 'close' handler runs as a task of this connection.
        self._start_task(awaitable)

    def _begin(self, transport: Transport) -> None:
        self._transport = transport
        self.transport = transport.name
        self._opened = True
        self._start_task(self._receive_loop())
        if transport.name != "websocket":
            self._start_task(self._send_loop())

    # -- receiving ----------------------------------------------------------------------
    async def _receive_loop(self) -> None:
        assert self._transport is not None
        try:
            await self._transport.run()
        except ConnectionClosed as exc:
            self._finish(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.exception("the receive loop failed")
            self._finish(ConnectionLost(CLOSE_LOST, f"internal error: {exc!r}"))

    def receive_heartbeat(self) -> None:
        """An ``h`` frame, or a WebSocket ping (sockjs-node's heartbeat there)."""
        self.heartbeats += 1
        self.emit("heartbeat")

    async def receive_frames(self, texts: Iterable[str]) -> bool:
        """Called by the transport with frames after the open one; True once the
        session is over (a close frame). Waits while the receive queue is full."""
        for text in texts:
            frame = protocol.parse_frame(text)
            kind = frame.kind
            if kind == protocol.MESSAGES:
                await self._deliver(frame.messages)
            elif kind == protocol.HEARTBEAT:
                self.receive_heartbeat()
            elif kind == protocol.CLOSE:
                self._finish(ConnectionClosed(frame.code, frame.reason))
                return True
            else:
                # A second "o": the server lost the session and made a new one
                # (a restart, say). sockjs-client says the same.
                self._finish(ConnectionLost(CLOSE_LOST, "Server lost session"))
                return True
            if self._closed is not None:
                return True
        return False

    async def _deliver(self, messages: Sequence[str]) -> None:
        if self._handlers.get("data"):
            self.emit_each("data", list(messages), _Alive(self))
            return
        inbox = self._inbox
        for message in messages:
            while len(inbox) >= self.max_queue and self._closed is None:
                # Full: stop reading from the server until recv() makes room.
                self._writable.clear()
                await self._writable.wait()
            if self._closed is not None and self._client_closed:
                return
            inbox.append(message)
            self._readable.set()

    async def recv(self, timeout: float | None = None) -> str:
        """The next message. Messages that arrived before a close come first; then
        ConnectionClosed (or its subclasses) is raised. TimeoutError after ``timeout``."""
        inbox = self._inbox
        if not inbox:
            async with asyncio.timeout(timeout):
                while not inbox:
                    if self._closed is not None:
                        raise self._closed
                    self._readable.clear()
                    await self._readable.wait()
        message = inbox.popleft()
        if len(inbox) < self.max_queue:
            self._writable.set()
        return message

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> str:
        """Ends after a clean close (the server's close frame, or ``close()``);
        raises ConnectionLost / ProtocolError when the session failed."""
        try:
            return await self.recv()
        except (ConnectionLost, ProtocolError):
            raise
        except ConnectionClosed:
            raise StopAsyncIteration from None

    # -- sending ------------------------------------------------------------------------
    async def send(self, message: str, timeout: float | None = None) -> None:
        """Send one message. Over xhr it is queued and batched with the others that
        wait (one ``xhr_send`` per batch); this waits (up to ``timeout``, default
        the connection's ``send_timeout``) only while ``max_send_buffer`` is exceeded.
        Raises ConnectionClosed once the session is closed."""
        if not isinstance(message, str):
            raise TypeError(f"SockJS messages are str, not {type(message).__name__}")
        if self._closed is not None:
            raise self._closed
        timeout = self.send_timeout if timeout is None else timeout
        transport = self._transport
        assert transport is not None
        if transport.name == "websocket":
            try:
                await transport.send([message], timeout)
            except ConnectionClosed as exc:
                self._finish(exc)
                raise
            return
        self._outbox.append(message)
        self._outbox_bytes += len(message)
        self._outbox_ready.set()
        self._outbox_drained.clear()
        if self._outbox_bytes > self.max_send_buffer:
            async with asyncio.timeout(timeout):
                while self._outbox_bytes > self.max_send_buffer and self._closed is None:
                    await self._wait_drained()
        if self._closed is not None:
            raise self._closed

    async def _wait_drained(self) -> None:
        self._outbox_drained.clear()
        await self._outbox_drained.wait()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued message has been sent (xhr); ConnectionClosed if
        the session ends first."""
        async with asyncio.timeout(timeout):
            while self._outbox and self._closed is None:
                await self._wait_drained()
            # And the batch in flight.
            await self._outbox_drained.wait()
        if self._closed is not None and not self._client_closed:
            raise self._closed

    async def _send_loop(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            while self._closed is None:
                if not self._outbox:
                    self._outbox_ready.clear()
                    await self._outbox_ready.wait()
                    continue
                # sockjs-client's BufferedSender: everything queued while the
                # previous request was in flight goes in one xhr_send.
                batch, self._outbox = self._outbox, []
                await transport.send(batch, self.send_timeout)
                self._outbox_bytes -= sum(len(m) for m in batch)
                if not self._outbox:
                    self._outbox_drained.set()
                else:
                    # Wake senders waiting under max_send_buffer.
                    self._outbox_drained.set()
                    self._outbox_drained.clear()
        except ConnectionClosed as exc:
            self._finish(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.exception("the send loop failed")
            self._finish(ConnectionLost(CLOSE_LOST, f"internal error: {exc!r}"))
        finally:
            self._outbox_drained.set()

    # -- closing ------------------------------------------------------------------------
    def _finish(self, exc: ConnectionClosed, close_timeout: float = 2.0) -> None:
        """The session is over: record why, wake every waiter, stop the tasks."""
        if self._closed is not None:
            return
        self._closed = exc
        self.close_code, self.close_reason = exc.code, exc.reason
        self._readable.set()
        self._writable.set()
        self._outbox_ready.set()
        self._outbox_drained.set()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current and not task.done():
                task.cancel()
        if self._transport is not None:
            # Tear the transport down in the background: a WebSocket waits a little
            # for the server's close after a clean close, not after a failure.
            graceful = type(exc) is ConnectionClosed
            self._start_task(self._teardown(self._transport, graceful, close_timeout))
        self.emit("close")

    async def _teardown(self, transport: Transport, graceful: bool, timeout: float) -> None:
        with contextlib.suppress(Exception):
            await transport.close(timeout if graceful else 0.0)
        with contextlib.suppress(Exception):
            await self._http.aclose()

    async def close(
        self, code: int = CLOSE_NORMAL, reason: str = "Normal closure", timeout: float = 5.0
    ) -> None:
        """Close the session. ``code`` is 1000 or 3000-4999 and ``reason`` at most 123
        UTF-8 bytes (as sockjs-client checks); they become ``close_code`` and
        ``close_reason``. Already closed: nothing happens."""
        if code != CLOSE_NORMAL and not 3000 <= code <= 4999:
            raise ValueError(f"close code must be 1000 or 3000-4999, not {code}")
        if len(reason.encode("utf-8")) > 123:
            raise ValueError("close reason is longer than 123 bytes")
        if self._closed is not None:
            await self._wait_tasks(timeout)
            return
        self._client_closed = True
        self._finish(ConnectionClosed(code, reason), min(timeout, 2.0))
        await self._wait_tasks(timeout)

    async def _wait_tasks(self, timeout: float) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class _Alive:
    """What emit_each checks between messages: stop once the session is closed."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @property
    def state(self) -> int:
        return 1 if self.conn._closed is None else 3


async def get_info(http: HttpClient, timeout: float | None) -> dict[str, Any]:
    """``GET /info``: whether websocket is allowed, cookie_needed, entropy."""
    path = http.base.path + "/info"
    try:
        async with asyncio.timeout(timeout):
            response = await http.request("GET", path, timeout=None)
            body = await response.read(None)
    except TimeoutError:
        raise ConnectError(f"{path} did not answer within {timeout}s") from None
    except ConnectionLost as exc:
        raise ConnectError(f"{path}: {exc.reason}") from exc
    if response.status != 200:
        raise ConnectError(f"no SockJS service here: {path} answered {response.status}")
    if response.content_type != "application/json":
        raise ProtocolError(
            CLOSE_PROTOCOL_ERROR, f"{path}: wrong content type {response.header('content-type')!r}"
        )
    try:
        info = json.loads(body)
    except ValueError:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"{path}: invalid JSON {body[:80]!r}") from None
    if not isinstance(info, dict):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"{path}: not a JSON object {body[:80]!r}")
    return info


class connect:
    """Open a SockJS session at ``url`` (``http(s)://`` or ``ws(s)://``, the
    service's prefix). Await it, or use it as an async context manager.

    ``transports`` restricts and orders the choice (default: websocket, then
    xhr-streaming, then xhr-polling; websocket only when ``/info`` allows it).
    ``headers`` go on every request, ``cookies`` start the cookie jar (the
    server's Set-Cookie, e.g. JSESSIONID, update it). ``timeout`` bounds
    ``/info`` and each transport's opening; ``heartbeat_timeout`` is how long
    the session may stay silent (the server's heartbeats included) before it is
    lost; ``send_timeout`` bounds each send. ``max_queue`` messages are buffered
    for ``recv()``; then the client stops reading from the server. ``max_send_buffer``
    characters may wait to be sent before ``send()`` waits. ``max_message_size``
    bounds one received frame.
    """

    def __init__(
        self,
        url: str,
        transports: Sequence[str] | None = None,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        cookies: Mapping[str, str] | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        timeout: float | None = 10.0,
        heartbeat_timeout: float | None = 60.0,
        send_timeout: float | None = 30.0,
        max_queue: int = 1024,
        max_send_buffer: int = 1 << 20,
        max_message_size: int = 16 << 20,
    ) -> None:
        self.base = protocol.Base.parse(url)
        chosen = list(protocol.TRANSPORTS if transports is None else transports)
        for name in chosen:
            if name not in protocol.TRANSPORTS:
                raise ValueError(f"unknown transport {name!r} (one of {protocol.TRANSPORTS})")
        if not chosen:
            raise ValueError("no transport to try")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.transports = chosen
        self.url = url
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        elif isinstance(headers, Mapping):
            self.headers = list(headers.items())
        else:
            self.headers = list(headers)
        self.cookies = dict(cookies or {})
        self.ssl = ssl
        self.timeout = timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.send_timeout = send_timeout
        self.max_queue = max_queue
        self.max_send_buffer = max_send_buffer
        self.max_message_size = max_message_size
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._open()
        return self._conn

    async def __aexit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def _open(self) -> Connection:
        http = HttpClient(
            self.base,
            headers=self.headers,
            cookies=CookieJar(self.cookies),
            ssl=self.ssl,
            connect_timeout=self.timeout,
        )
        try:
            return await self._choose(http)
        except BaseException:
            await http.aclose()
            raise

    async def _choose(self, http: HttpClient) -> Connection:
        info = await get_info(http, self.timeout)
        websocket = info.get("websocket", True) is not False
        candidates = [t for t in self.transports if t != "websocket" or websocket]
        if not candidates:
            raise ConnectError("/info disallows websocket, the only transport allowed")
        server = protocol.server_id()
        errors: dict[str, BaseException] = {}
        for name in candidates:
            session = protocol.session_id()
            conn = Connection(
                self.url,
                http,
                max_queue=self.max_queue,
                max_send_buffer=self.max_send_buffer,
                heartbeat_timeout=self.heartbeat_timeout,
                send_timeout=self.send_timeout,
            )
            conn.info, conn.server_id, conn.session_id = info, server, session
            path = f"{self.base.path}/{server}/{session}"
            transport: Transport
            if name == "websocket":
                transport = WebSocketTransport(
                    conn, http, path + "/websocket", self.max_message_size
                )
            else:
                transport = XhrTransport(
                    conn, http, path, self.max_message_size, streaming=name == "xhr-streaming"
                )
            try:
                await transport.open(self.timeout)
            except ProtocolError:
                # A server that sends garbage is not fixed by another transport.
                raise
            except ConnectionClosed as exc:
                _log.debug("transport %s failed: %s", name, exc)
                errors[name] = exc
                continue
            conn._begin(transport)
            return conn
        raise ConnectError(f"no transport could open a session at {self.url}", errors)
