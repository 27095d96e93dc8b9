"""The three transports the client speaks, as sockjs-client does: websocket,
xhr-streaming and xhr-polling (the last two send through ``xhr_send``).

A transport opens a session (up to and including the ``o`` frame), then
``run()`` reads frames until the session ends and hands them to its
:class:`~fastsockjs.client.connection.Connection` through ``receive_frames``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

from fastsockjs.client import websocket as ws
from fastsockjs.client.errors import (
    CLOSE_LOST,
    CLOSE_PROTOCOL_ERROR,
    ConnectionClosed,
    ProtocolError,
)
from fastsockjs.client.http import HttpClient, HttpConnection, Response, lost
from fastsockjs.client.protocol import (
    CLOSE,
    HEARTBEAT,
    OPEN,
    Frame,
    LineSplitter,
    encode_messages,
    parse_frame,
)


class Connection(Protocol):
    """What a transport needs of the client connection it feeds (the
    :class:`fastsockjs.client.Connection`): where frames go, and the heartbeat
    watchdog's bound."""

    heartbeat_timeout: float | None

    async def receive_frames(self, texts: Iterable[str]) -> bool: ...
    def receive_heartbeat(self) -> None: ...

#: What SockJS servers send xhr frames as (sockjs-node, Spring and vert.x all say
#: application/javascript; older ones text/javascript).
FRAME_CONTENT_TYPES = frozenset(
    ("application/javascript", "text/javascript", "application/x-javascript")
)
SEND_CONTENT_TYPE = "text/plain;charset=UTF-8"


class Transport(Protocol):
    name: str

    async def open(self, timeout: float | None) -> None: ...
    async def run(self) -> None: ...
    async def send(self, messages: Sequence[str], timeout: float | None) -> None: ...
    async def close(self, timeout: float | None) -> None: ...


def _expect_open(frame: Frame, transport: str) -> None:
    if frame.kind == CLOSE:
        # The server refused the session (e.g. c[2010,"Another connection still open"]).
        raise ConnectionClosed(frame.code, frame.reason)
    if frame.kind != OPEN:
        raise ProtocolError(
            CLOSE_PROTOCOL_ERROR, f"{transport}: expected the open frame, got {frame.kind!r}"
        )


class WebSocketTransport:
    name = "websocket"

    def __init__(self, conn: Connection, http: HttpClient, path: str, max_size: int) -> None:
        self.conn = conn
        self.http = http
        self.path = path
        self.codec = ws.ClientCodec(max_size)
        self._link: HttpConnection | None = None
        self._pending: list[str] = []
        self._write_lock = asyncio.Lock()
        self._closing = False
        self._ws_close: ConnectionClosed | None = None

    async def open(self, timeout: float | None) -> None:
        key = ws.new_key()
        link = await self.http.connection(fresh=True)
        self._link = link
        try:
            async with asyncio.timeout(timeout):
                response = await link.request(
                    "GET",
                    self.path,
                    self.http.request_headers(
                        [
                            ("Upgrade", "websocket"),
                            ("Connection", "Upgrade"),
                            ("Sec-WebSocket-Key", key),
                            ("Sec-WebSocket-Version", "13"),
                        ]
                    ),
                    b"",
                    None,
                )
                if response.status != 101 or not response.upgraded:
                    response.close()
                    # Not a protocol error: a proxy without WebSocket, or websocket
                    # disabled on the server. The next transport is tried.
                    raise lost(f"websocket handshake answered {response.status}")
                if response.header("sec-websocket-accept") != ws.accept_key(key):
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "wrong Sec-WebSocket-Accept")
                self.http.cookies.update(response.headers)
                self._pending = self._receive(link.leftover)
                while not self._pending:
                    self._pending = self._receive(await self._read(None))
        except TimeoutError:
            link.close()
            raise lost(f"websocket: no open frame within {timeout}s") from None
        except BaseException:
            link.close()
            raise
        _expect_open(parse_frame(self._pending.pop(0)), self.name)

    async def _read(self, timeout: float | None) -> bytes:
        assert self._link is not None
        if self._ws_close is not None:
            raise self._ws_close
        try:
            async with asyncio.timeout(timeout):
                data = await self._link.reader.read(65536)
        except TimeoutError:
            raise lost(f"websocket: nothing received for {timeout}s") from None
        except OSError as exc:
            raise lost(f"websocket: {exc}") from exc
        if not data:
            raise lost("WebSocket connection broken (EOF without a close frame)")
        return data

    def _receive(self, data: bytes) -> list[str]:
        texts: list[str] = []
        for kind, value in self.codec.receive_data(data):
            if kind == ws.TEXT:
                texts.append(value)
            elif kind == ws.PING:
                assert self._link is not None
                self._link.writer.write(self.codec.pong(value))
                # sockjs-node (0.3.20 on) heartbeats a WebSocket with pings, not "h".
                self.conn.receive_heartbeat()
            elif kind == ws.CLOSE:
                # A close with no SockJS close frame before it: sockjs-client's 1006.
                error: ConnectionClosed = lost(
                    f"WebSocket connection broken (closed {value[0]} {value[1]!r})"
                )
            else:
                error = ProtocolError(CLOSE_PROTOCOL_ERROR, str(value))
            if kind in (ws.CLOSE, ws.FAIL):
                # Frames that came before it are handed on first (one may be the close).
                self._ws_close = error
                if not texts:
                    raise error
        return texts

    async def run(self) -> None:
        pending, self._pending = self._pending, []
        if pending and await self.conn.receive_frames(pending):
            return
        while True:
            texts = self._receive(await self._read(self.conn.heartbeat_timeout))
            if texts and await self.conn.receive_frames(texts):
                return

    async def send(self, messages: Sequence[str], timeout: float | None) -> None:
        assert self._link is not None
        frame = self.codec.text(encode_messages(messages))
        async with self._write_lock:
            try:
                async with asyncio.timeout(timeout):
                    self._link.writer.write(frame)
                    await self._link.writer.drain()
            except TimeoutError:
                raise lost(f"websocket: could not send within {timeout}s") from None
            except OSError as exc:
                raise lost(f"websocket: {exc}") from exc

    async def close(self, timeout: float | None) -> None:
        link = self._link
        if link is None or self._closing:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            link.writer.write(self.codec.close(1000 if timeout else 1002, ""))
            async with asyncio.timeout(timeout):
                await link.writer.drain()
                # Wait for the server's close (or EOF) rather than cut it short.
                while not self.codec.failed:
                    data = await link.reader.read(65536)
                    if not data:
                        break
                    self.codec.receive_data(data)
        link.close()


class XhrTransport:
    """``xhr_streaming`` or ``xhr`` (polling) to receive, ``xhr_send`` to send."""

    def __init__(
        self, conn: Connection, http: HttpClient, path: str, max_size: int, streaming: bool
    ) -> None:
        self.conn = conn
        self.http = http
        self.path = path  # .../server/session
        self.max_size = max_size
        self.streaming = streaming
        self.name = "xhr-streaming" if streaming else "xhr-polling"
        self._receive_path = path + ("/xhr_streaming" if streaming else "/xhr")
        self._response: Response | None = None
        self._body: AsyncIterator[bytes] | None = None
        self._lines: LineSplitter | None = None
        self._pending: list[str] = []

    async def _start(self, timeout: float | None) -> None:
        response = await self.http.request(
            "POST", self._receive_path, timeout=timeout
        )
        if response.status != 200:
            body = b""
            with contextlib.suppress(Exception):
                body = await response.read(1.0)
            response.close()
            what = f"{self.name}: {self._receive_path} answered {response.status} {body[:100]!r}"
            if response.status == 404:
                raise lost(what + " (session not found)")
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, what)
        if response.content_type not in FRAME_CONTENT_TYPES:
            response.close()
            raise ProtocolError(
                CLOSE_PROTOCOL_ERROR,
                f"{self.name}: wrong content type {response.header('content-type')!r}",
            )
        self._response = response
        self._body = response.chunks(self.conn.heartbeat_timeout)
        self._lines = LineSplitter(self.max_size)

    async def _next_lines(self) -> list[str] | None:
        """Frames of the current response as they come; None at its end."""
        assert self._body is not None and self._lines is not None
        try:
            data = await anext(self._body)
        except StopAsyncIteration:
            if self._lines.pending:
                raise ProtocolError(
                    CLOSE_PROTOCOL_ERROR, f"{self.name}: the response ended inside a frame"
                ) from None
            self._body = self._response = None
            return None
        return self._lines.feed(data)

    async def open(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._start(None)
                while True:
                    lines = await self._next_lines()
                    if lines is None:
                        raise lost(f"{self.name}: the response ended before the open frame")
                    # Skip the streaming prelude (a line of "h") before "o".
                    while lines and parse_frame(lines[0]).kind == HEARTBEAT:
                        lines.pop(0)
                    if lines:
                        self._pending = lines
                        break
        except TimeoutError:
            self._abort()
            raise lost(f"{self.name}: no open frame within {timeout}s") from None
        except BaseException:
            self._abort()
            raise
        _expect_open(parse_frame(self._pending.pop(0)), self.name)

    async def run(self) -> None:
        pending, self._pending = self._pending, []
        if pending and await self.conn.receive_frames(pending):
            return
        while True:
            if self._body is None:
                # Polling: the next request; streaming: the previous response hit
                # the server's response_limit. Either way the session goes on.
                await self._start(self.conn.heartbeat_timeout)
            lines = await self._next_lines()
            if lines and await self.conn.receive_frames(lines):
                return

    async def send(self, messages: Sequence[str], timeout: float | None) -> None:
        response = await self.http.request(
            "POST",
            self.path + "/xhr_send",
            body=encode_messages(messages),
            headers=[("Content-Type", SEND_CONTENT_TYPE)],
            timeout=timeout,
        )
        body = await response.read(timeout)
        if response.status in (200, 204):
            return
        what = f"xhr_send answered {response.status} {body[:100]!r}"
        if response.status == 404:
            raise lost(what + " (session not found)")
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, what)

    def _abort(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = self._body = None

    async def close(self, timeout: float | None) -> None:
        # As sockjs-client: abort the receiving request; the server ends the
        # session once no request has come for its disconnect_delay.
        self._abort()


__all__ = ["CLOSE_LOST", "Transport", "WebSocketTransport", "XhrTransport"]
