"""The HTTP/1.x connection: httptools parsing, keep-alive and pipelining,
chunked or close-delimited streaming, and the hand-off to WebSocket.

Requests on one connection are answered strictly in order: a request parsed
while another is still being answered waits in a short queue (reading pauses
if it grows).

This module is plain Python and is also compiled as it is (Cython's pure-Python
mode: ``_connection.pxd`` makes both classes ``cdef class``es with typed
attributes and C-level calls between their per-request methods) into
``fastsockjs.aio._connection``; ``fastsockjs.aio.http`` picks one as it picks
every kernel. Keep it to what both can run: no ``asyncio.Protocol`` base (a
compiled class cannot have a Python base; asyncio needs only the methods), no
attribute outside the ``.pxd``, no assignment to a method.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol

import httptools

from fastsockjs.aio.websocket import Hixie76Handshake, WebSocket
from fastsockjs.engine.core import Engine
from fastsockjs.heads import NEED_MORE, ParseRequest
from fastsockjs.heads import parse_request as compiled_parse_request
from fastsockjs.protocol import websocket as wsproto
from fastsockjs.protocol.http import (
    TEXT_PLAIN,
    Headers,
    HttpError,
    Request,
    TrustedProxies,
    error_response,
    fold_header,
    head,
    log_access,
    request_target,
)
from fastsockjs.protocol.timers import Deadline, TimerQueue
from fastsockjs.transports.base import SinkOwner


class ConnectionOwner(Protocol):
    """What a connection needs of the listener that accepted it (a Listener)."""

    engine: Engine
    connections: set[HttpProtocol]
    bytes_in: int
    bytes_out: int
    max_body: int
    max_request_line: int
    max_header_bytes: int
    request_timeout: float
    keepalive_timeout: float
    forwarded: TrustedProxies | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def timers(self) -> TimerQueue: ...
    def dispatch(self, request: Request, exchange: Exchange) -> None: ...

_log = logging.getLogger("fastsockjs.error")
_access = logging.getLogger("fastsockjs.access")

_MAX_QUEUED = 16
#: A head still incomplete past this many bytes, or after this many reads, goes
#: to httptools (whose callbacks apply the limits as the bytes come).
_FAST_HEAD_LIMIT = 16 * 1024
_MAX_HEAD_READS = 8
#: Seconds a connection closed on an error keeps draining the client's bytes.
LINGER_TIMEOUT = 2.0
_REQUEST = 1  # deadline for a request's head and body to arrive (slowloris)
_IDLE = 2  # deadline for an idle keep-alive connection
_HANDSHAKE = 3  # deadline for a draft-76 client's 8-byte nonce, after our 101


class HttpProtocol:
    """asyncio's Protocol for one HTTP connection (see the module docstring for
    why it does not derive from ``asyncio.Protocol``)."""

    __slots__ = (
        "listener",
        "loop",
        "transport",
        "parser",
        "remote",
        "forwarded",
        "ws",
        "endpoint",
        "write_paused",
        "closed",
        "_url",
        "_headers",
        "_body",
        "_body_size",
        "_too_big",
        "_queue",
        "_active",
        "_tail",
        "_upgraded",
        "_discard_tail",
        "_lingering",
        "_reading_paused",
        "_header_bytes",
        "_host_lines",
        "_valid_host",
        "_reject",
        "_deadline",
        "_deadline_kind",
        "_linger",
        "_fast",
        "_pending",
        "_pending_size",
        "_need",
        "_head_reads",
        "__weakref__",
    )

    def __init__(
        self, listener: ConnectionOwner, parse: ParseRequest | None = compiled_parse_request
    ) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.transport: Any = None
        # Requests are read by the compiled head parser while they stay in its
        # plain subset; the first that does not hands the connection to httptools.
        self._fast = parse
        # (httptools' parser, which refers back to us, comes with the connection.)
        self.parser: Any = None
        # Bytes of an unfinished request on the fast path, how many it needs in
        # all before it is parsed again (0: a head), and the reads a head took.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._need = 0
        self._head_reads = 0
        self.remote: tuple[str | None, int | None] = (None, None)
        # The trusted proxies, when the peer is one: its requests' forwarding
        # headers then name the client.
        self.forwarded: TrustedProxies | None = None
        self.ws: Any = None
        # The mount the latest request went to (its bytes count in its stats()).
        self.endpoint: Any = None
        self.write_paused = False
        self.closed = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_big = False
        self._queue: deque[Request] = deque()
        self._active: Exchange | None = None
        self._tail = b""
        self._upgraded = False
        self._discard_tail = False
        self._lingering = False
        self._reading_paused = False
        self._header_bytes = 0
        self._host_lines = 0
        # The last Host value found valid: a connection's requests repeat it.
        self._valid_host: str | None = None
        self._reject: tuple[int, str] | None = None
        self._deadline_kind = 0
        self._linger: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote = (peer[0], peer[1])
        trusted = self.listener.forwarded
        if trusted is not None and self.remote[0] in trusted:
            self.forwarded = trusted
        self.listener.connections.add(self)
        # What refers back to us (the Deadline, httptools' parser) comes with the
        # connection: a protocol whose connection never comes (a failed TLS
        # handshake) holds no cycle and is freed at once.
        if self._fast is None:
            self.parser = httptools.HttpRequestParser(self)
        self._deadline = Deadline(self.listener.timers, self.on_timer)
        self._set_deadline(_REQUEST, self.listener.request_timeout)

    # -- deadlines (one Deadline on the listener's shared heap) -----------------------
    def _set_deadline(self, kind: int, delay: float) -> None:
        self._deadline_kind = kind
        self._deadline.set(self.loop.time() + delay)

    def clear_deadline(self) -> None:
        self._deadline_kind = 0
        self._deadline.clear()

    def on_timer(self, now: float) -> None:
        if self.closed or not self._deadline_kind:
            return
        if self._deadline_kind == _REQUEST:
            self._fail(408, "Request Timeout")
        elif self._deadline_kind == _HANDSHAKE:
            # The 101 is out: no HTTP answer fits any more, only closing.
            self.transport.close()
            self.closed = True
        elif self._active is None:
            self.transport.close()
            self.closed = True

    def send(self, data: bytes) -> None:
        """Write to the socket, counting bytes for stats()."""
        n = len(data)
        self.listener.bytes_out += n
        endpoint = self.endpoint
        if endpoint is not None:
            endpoint.bytes_out += n
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        n = len(data)
        self.listener.bytes_in += n
        endpoint = self.endpoint
        if endpoint is not None:
            endpoint.bytes_in += n
        if self._lingering:
            return  # closing: read and drop until the client is done
        if self.ws is not None:
            self.ws.data_received(data)
            return
        if self._fast is not None:
            self._read_fast(data)
            return
        if self._upgraded:
            # Bytes after an Upgrade request: the WebSocket's first frames if it
            # is accepted (bounded), nothing anyone will read if it is not.
            if self._discard_tail:
                return
            if len(self._tail) + len(data) > self.listener.max_body:
                self.linger_close()
                return
            self._tail += data
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded = True
            self._tail = data[exc.args[0] :]
            self._next()
        except httptools.HttpParserError:
            status, message = self._reject or (400, "Bad Request")
            self._fail(status, message)

    def _read_fast(self, data: bytes) -> None:
        """Whole requests out of ``data`` (and what came before it), each in one
        call of the compiled parser."""
        if self._pending:
            pending = self._pending
            if self._need:
                self._pending_size += len(data)
                pending.append(data)
                if self._pending_size < self._need:
                    return  # the rest of a body
            else:
                # A head in pieces: parsed again with each piece (so that what
                # httptools would refuse at once is refused at once), a few times.
                self._pending_size += len(data)
                pending.append(data)
                self._head_reads += 1
                if self._head_reads > _MAX_HEAD_READS:
                    # A slow client: httptools reads on, byte by byte, in linear time.
                    self._pending = []
                    self._pending_size = 0
                    self._use_httptools(b"".join(pending))
                    return
            data = b"".join(pending)
            self._pending = []
            self._pending_size = 0
            self._need = 0
        parse = self._fast
        listener = self.listener
        n = len(data)
        pos = 0
        while pos < n and parse is not None and not self.closed:
            result = parse(
                data, pos, listener.max_request_line, listener.max_header_bytes, listener.max_body
            )
            if isinstance(result, tuple):
                end = result[0]
                if end > n:  # the body is still coming
                    self._wait(data[pos:], end - pos)
                    return
                pos = end
                self._head_reads = 0
                _, method, target, version, headers, host_lines, keep_alive, body = result
                self._complete(method, target, version, headers, host_lines, keep_alive, body)
                if not keep_alive:
                    return  # the last request of this connection: what follows is not read
            elif result == NEED_MORE and n - pos <= self._head_limit():
                self._wait(data[pos:], 0)
                return
            else:
                # Outside the fast parser's subset (or too big for it): httptools
                # reads this request and every later one, and gives any error.
                self._use_httptools(data[pos:])
                return

    def _use_httptools(self, data: bytes) -> None:
        self._fast = None
        self.parser = httptools.HttpRequestParser(self)
        self._feed(data)

    def _head_limit(self) -> int:
        # Past this an unfinished head is httptools' to refuse (431) as it grows.
        return min(_FAST_HEAD_LIMIT, self.listener.max_header_bytes)

    def _wait(self, part: bytes, need: int) -> None:
        self._pending = [part]
        self._pending_size = len(part)
        self._need = need
        if self._deadline_kind != _REQUEST:  # a slow request has its deadline too
            self._set_deadline(_REQUEST, self.listener.request_timeout)

    def eof_received(self) -> bool:
        # A client that half-closes has gone away, as far as SockJS is concerned.
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.listener.connections.discard(self)
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.connection_lost()
        active, self._active = self._active, None
        if active is not None:
            active.lost()
        self._release()

    def _release(self) -> None:
        """Let go of everything this connection held, so that it is garbage as soon
        as the transport drops it: no timer entry, parser (a reference cycle
        through its callbacks) or request data outlives the socket."""
        self._deadline.close()
        self._deadline_kind = 0
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.parser = None
        self._fast = None
        self._pending = []
        self._queue.clear()
        self._headers = {}
        self._body = []
        self._url = b""
        self._tail = b""
        self.endpoint = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        active = self._active
        if active is not None:
            active.resumed()
        ws = self.ws
        if ws is not None and ws.app is not None:
            ws.app.writable_again()

    @property
    def busy(self) -> bool:
        """Still answering something (a response, a WebSocket)."""
        return not self.closed and (self._active is not None or self.ws is not None)

    def close_if_idle(self) -> None:
        if not self.busy and not self.closed and self.transport is not None:
            self.transport.close()
            self.closed = True

    # -- httptools callbacks -----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0
        self._header_bytes = 0
        self._host_lines = 0
        self._too_big = False
        if self._deadline_kind != _REQUEST:
            self._set_deadline(_REQUEST, self.listener.request_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.listener.max_request_line:
            self._reject = (414, "URI Too Long")
            raise ValueError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.listener.max_header_bytes:
            self._reject = (431, "Request Header Fields Too Large")
            raise ValueError("header block too large")
        key = name.lower().decode("latin-1")
        if key == "host":
            self._host_lines += 1
        fold_header(self._headers, key, value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.listener.max_body:
            self._too_big = True

    def on_body(self, body: bytes) -> None:
        if self._too_big:
            return
        self._body_size += len(body)
        if self._body_size > self.listener.max_body:
            self._too_big = True
            self._body = []
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        self._complete(
            parser.get_method().decode("ascii", "replace"),
            self._url.decode("latin-1"),
            parser.get_http_version(),
            self._headers,
            self._host_lines,
            parser.should_keep_alive(),
            b"".join(self._body),
            parser.should_upgrade(),
        )
        self._body = []

    def _complete(
        self,
        method: str,
        url: str,
        version: str,
        headers: dict[str, str],
        host_lines: int,
        keep_alive: bool,
        body: bytes,
        upgrade: bool = False,
    ) -> None:
        """A whole request has been read: check it, queue it, answer it in its turn."""
        if self._deadline_kind:
            self.clear_deadline()
        if url[:1] == "/" and host_lines == 1 and headers["host"] == self._valid_host:
            target, invalid = url, None  # checked on an earlier request of this connection
        else:
            target, invalid = request_target(url, headers, version, host_lines)
            if invalid is None and host_lines == 1:
                self._valid_host = headers["host"]
        request = Request(
            method,
            target,
            headers,
            version,
            keep_alive,
            body,
            self.remote if self.forwarded is None else self.forwarded.client(
                self.remote, headers
            ),
            upgrade,
        )
        if self._too_big:
            request.body = b""
            request.keep_alive = False
            request.error = HttpError(413, "Payload Too Large")
        elif invalid is not None:
            # A client this confused (or a smuggling attempt): answer, then close.
            request.keep_alive = False
            request.error = invalid
        self._queue.append(request)
        if upgrade:
            # httptools raises HttpParserUpgrade next; data_received then keeps
            # the bytes that followed the head and dispatches the request.
            return
        if self._active is None:
            self._next()
        elif len(self._queue) > _MAX_QUEUED and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    # -- dispatch --------------------------------------------------------------------
    def _next(self) -> None:
        while self._active is None and self._queue and not self.closed:
            request = self._queue.popleft()
            exchange = Exchange(self, request)
            self._active = exchange
            if request.error is not None:
                exchange.error(request.error)
                continue
            try:
                self.listener.dispatch(request, exchange)
            except HttpError as err:
                exchange.error(err)
            except Exception:
                _log.exception("error answering %s %s", request.method, request.url)
                exchange.error(HttpError(500, "500 - Internal Server Error"))
            if request.upgrade and self.ws is None and (exchange.done or exchange._streaming):
                # Answered or streaming without upgrading: the bytes after the head
                # are nobody's. (An answer still to come, as after an async
                # authorize hook, keeps them for the WebSocket.)
                self._tail = b""
                self._discard_tail = True
        if self._reading_paused and len(self._queue) < _MAX_QUEUED // 2 and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def _finished(self, exchange: Exchange, keep_alive: bool) -> None:
        if self._active is not exchange:
            return
        self._active = None
        if not keep_alive or self._upgraded:
            # The client may have pipelined more: no RST over unread answers.
            self.linger_close()
            return
        if self._queue:
            self._next()
        elif self._deadline_kind == 0:
            self._set_deadline(_IDLE, self.listener.keepalive_timeout)

    def _fail(self, status: int, message: str) -> None:
        self.listener.engine.count_error(status)
        if _access.isEnabledFor(logging.INFO):
            _access.info("%s - %d %s (connection closed)", self.remote[0], status, message)
        if self._active is None and not self.closed:
            body = message.encode("utf-8")
            self.send(
                head(status, [("Content-Type", TEXT_PLAIN)], content_length=len(body),
                     keep_alive=False) + body
            )
        self.linger_close()

    def linger_close(self) -> None:
        """Close after an error without resetting the connection.

        Closing with the client's bytes unread makes the kernel send a RST,
        which discards what the client has not read yet: our error answer.
        So: half-close, read and drop for a while, then close (RFC 9112 9.6).
        """
        transport = self.transport
        if self._lingering or transport is None:
            return
        self._lingering = True
        self.closed = True
        self.clear_deadline()
        try:
            transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            transport.close()
            return
        self._linger = self.loop.call_later(LINGER_TIMEOUT, transport.close)


class Exchange:
    """One request/response on an HttpProtocol; also the response Sink when streaming."""

    __slots__ = (
        "proto",
        "request",
        "done",
        "chunked",
        "keep_alive",
        "status",
        "started",
        "_head",
        "_owner",
        "_streaming",
    )

    def __init__(self, proto: HttpProtocol, request: Request) -> None:
        self.proto = proto
        self.request = request
        self.status = 0
        self.started = proto.loop.time()
        self.done = False
        self.chunked = False
        self.keep_alive = request.keep_alive and not request.upgrade
        self._head = b""
        self._owner: SinkOwner | None = None
        self._streaming = False

    # -- answering -------------------------------------------------------------------
    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        if self.done or self._streaming:
            return
        self.done = True
        proto = self.proto
        if proto.closed:
            return
        self.status = status
        if _access.isEnabledFor(logging.INFO):
            self._log(status)
        bodyless = status in (204, 304) or status < 200
        data = head(
            status,
            headers,
            version=self.request.version,
            content_length=None if bodyless else len(body),
            keep_alive=self.keep_alive,
        )
        proto.send(data + body if body and not bodyless else data)
        proto._finished(self, self.keep_alive)

    def _log(self, status: int, note: str = "") -> None:
        ms = (self.proto.loop.time() - self.started) * 1000
        log_access(_access, self.request, status, ms, note)

    def error(self, err: HttpError) -> None:
        self.proto.listener.engine.count_error(err.status)
        if self._streaming and not self.done:
            # Too late for a status line: all we can do is end the connection.
            self.done = True
            self.proto._fail(err.status, err.message)
            return
        if err.status >= 500 or err.status in (413, 414, 431):
            self.keep_alive = False  # the client's state is unknown or its request unread
        self.respond(*error_response(err))

    def stream(self, status: int, headers: Headers) -> Exchange:
        """Start a streamed response; returns the sink frames are written to."""
        self._streaming = True
        self.status = status
        self.chunked = self.request.version == "1.1"
        if not self.chunked:
            self.keep_alive = False  # HTTP/1.0: the end of the body is the close
        self._head = head(
            status,
            headers,
            version=self.request.version,
            chunked=self.chunked,
            keep_alive=self.keep_alive,
        )
        return self

    def upgrade(
        self,
        app: Any,
        max_size: int,
        hixie76: bool = False,
        ping: tuple[float, float] | None = None,
    ) -> Any:
        proto = self.proto
        request = self.request
        if not request.upgrade or proto.closed:
            raise HttpError(400, 'Can "Upgrade" only to "WebSocket".')
        self.done = True
        self._streaming = True
        proto._active = None
        tail, proto._tail = proto._tail, b""
        if hixie76:
            proto.send(wsproto.hixie76_response(request))
            # The nonce is the rest of the request: it gets the request timeout too.
            proto._set_deadline(_HANDSHAKE, proto.listener.request_timeout)
            handshake = Hixie76Handshake(proto, proto.listener.timers, request, app, max_size)
            proto.ws = handshake
            if tail:
                handshake.data_received(tail)
            return handshake
        proto.send(wsproto.handshake_response(request))
        if _access.isEnabledFor(logging.INFO):
            self._log(101, " (websocket)")
        proto.clear_deadline()
        # permessage-deflate when the transport agreed to it (the 101 said so).
        deflate = request.ws_deflate
        codec: wsproto.Codec = (
            wsproto.DeflateCodec(max_size, deflate)
            if deflate is not None
            else wsproto.Codec(max_size)
        )
        ws = WebSocket(proto, proto.listener.timers, codec, app, ping)
        proto.ws = ws
        ws.start(tail)
        return ws

    # -- Sink ----------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self.proto.write_paused

    @property
    def flow(self) -> HttpProtocol:
        return self.proto

    @property
    def buffered(self) -> int:
        transport = self.proto.transport
        return int(transport.get_write_buffer_size()) if transport is not None else 0

    def attach(self, owner: SinkOwner) -> None:
        self._owner = owner

    def write(self, data: bytes) -> None:
        if self.done or self.proto.closed:
            return
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self._head:
            data = self._head + data
            self._head = b""
        self.proto.send(data)

    def end(self, last: bytes = b"") -> None:
        """End the body, after ``last`` (written in the same syscall)."""
        if self.done:
            return
        self.done = True
        self._owner = None  # over: no abort can come (and no cycle with the receiver)
        proto = self.proto
        if proto.closed:
            return
        if _access.isEnabledFor(logging.INFO):
            self._log(self.status, " (stream ended)")
        if self.chunked:
            tail = (b"%x\r\n%b\r\n0\r\n\r\n" % (len(last), last)) if last else b"0\r\n\r\n"
        else:
            tail = last
        if self._head:
            tail = self._head + tail
            self._head = b""
        if tail:
            proto.send(tail)
        proto._finished(self, self.keep_alive)

    def lost(self) -> None:
        """The connection dropped while this exchange was active."""
        if self.done:
            return
        self.done = True
        if _access.isEnabledFor(logging.INFO):
            self._log(self.status, " (client went away)")
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.abort()

    def resumed(self) -> None:
        owner = self._owner
        if owner is not None:
            owner.writable_again()
