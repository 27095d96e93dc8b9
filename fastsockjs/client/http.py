"""A small HTTP/1.1 client for the SockJS transports: asyncio streams, the
httptools response parser (the server's own dependency), keep-alive connections,
TLS through ``ssl``, and a cookie jar for JSESSIONID stickiness.

Why not aiohttp or httpx: see docs/client.md (measured there). This only has to
speak to one origin, with at most a receive and a send request at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Iterable
from http.cookies import CookieError, SimpleCookie

import httptools

from fastsockjs.client.errors import (
    CLOSE_LOST,
    CLOSE_PROTOCOL_ERROR,
    ConnectionLost,
    ProtocolError,
)
from fastsockjs.client.protocol import Base

Headers = list[tuple[str, str]]

_READ_SIZE = 65536


def lost(what: str) -> ConnectionLost:
    return ConnectionLost(CLOSE_LOST, what)


class CookieJar:
    """The cookies of one origin, by name (what a sticky load balancer sets)."""

    def __init__(self, cookies: dict[str, str] | None = None) -> None:
        self.cookies: dict[str, str] = dict(cookies or {})

    def update(self, headers: Iterable[tuple[str, str]]) -> None:
        for name, value in headers:
            if name != "set-cookie":
                continue
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value)
            except CookieError:
                continue
            for key, morsel in jar.items():
                if morsel["max-age"] in ("0", "-1"):
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value

    def header(self) -> str | None:
        if not self.cookies:
            return None
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


class Response:
    """Status and headers at once; the body as it arrives (``chunks``) or whole
    (``read``). Releases its connection to the pool once the body is complete."""

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn
        self.status = 0
        self.headers: Headers = []
        self.headers_done = False
        self.complete = False
        self.upgraded = False
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None
        self._pieces: list[bytes] = []

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    # -- httptools callbacks -------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # Asked now: once a chunked message is complete, llhttp answers for the next one.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    # -- body ------------------------------------------------------------------------------
    async def chunks(self, idle_timeout: float | None) -> AsyncIterator[bytes]:
        """Body bytes as they come; ``idle_timeout`` bounds each wait for more."""
        try:
            while True:
                if self._pieces:
                    pieces, self._pieces = self._pieces, []
                    yield b"".join(pieces)
                    continue
                if self.complete:
                    break
                await self._conn.read_more(self, idle_timeout)
        finally:
            self._conn.finished(self)

    async def read(self, timeout: float | None) -> bytes:
        """The whole body, within ``timeout`` seconds."""
        out = bytearray()
        async with asyncio.timeout(timeout):
            async for piece in self.chunks(None):
                out += piece
        return bytes(out)

    def close(self) -> None:
        """Give up on the rest of the body (the connection is not reused)."""
        self._conn.finished(self)


class HttpConnection:
    """One TCP (or TLS) connection, one request at a time."""

    def __init__(
        self,
        client: HttpClient,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.client = client
        self.reader = reader
        self.writer = writer
        self.reused = False  # taken from the idle pool (may have gone stale meanwhile)
        self.leftover = b""  # bytes after a 101 response: the WebSocket's first frames
        self._parser: httptools.HttpResponseParser | None = None

    async def request(
        self, method: str, target: str, headers: Headers, body: bytes, timeout: float | None
    ) -> Response:
        lines = [f"{method} {target} HTTP/1.1"]
        lines.extend(f"{k}: {v}" for k, v in headers)
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        response = Response(self)
        self._parser = response.parser = httptools.HttpResponseParser(response)
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    self.writer.write(body)
                await self.writer.drain()
                while not response.headers_done:
                    await self.read_more(response, None)
        except TimeoutError:
            self.close()
            raise lost(f"no response to {method} {target} within {timeout}s") from None
        except BaseException:
            self.close()
            raise
        response.status = self._parser.get_status_code()
        return response

    async def read_more(self, response: Response, timeout: float | None) -> None:
        """Feed the parser the next bytes; raise ConnectionLost on an early EOF."""
        assert self._parser is not None
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(_READ_SIZE)
        except TimeoutError:
            self.close()
            raise lost(f"nothing received for {timeout}s") from None
        except OSError as exc:
            self.close()
            raise lost(f"connection error: {exc}") from exc
        if not data:
            self.close()
            if response.headers_done and self._eof_delimited(response):
                response.complete = True
                return
            where = "in the body" if response.headers_done else "before the response head ended"
            raise lost(f"early EOF: the server closed the connection {where}")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self.leftover = data[offset:]
            response.upgraded = True
            response.headers_done = True
        except httptools.HttpParserError as exc:
            self.close()
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"malformed HTTP response: {exc}") from None

    @staticmethod
    def _eof_delimited(response: Response) -> bool:
        # Neither a length nor chunked: the body ends with the connection (RFC 9112 6.3).
        if response.header("content-length") is not None:
            return False
        return "chunked" not in (response.header("transfer-encoding") or "").lower()

    def finished(self, response: Response) -> None:
        if (
            response.complete
            and not response.upgraded
            and response.keep_alive
            and self._parser is not None
            and not self.writer.is_closing()
        ):
            self._parser = None
            self.client.release(self)
        else:
            self.close()

    def close(self) -> None:
        self._parser = None
        self.client.forget(self)
        if not self.writer.is_closing():
            self.writer.close()


class HttpClient:
    """Requests to one origin, reusing idle keep-alive connections."""

    def __init__(
        self,
        base: Base,
        *,
        headers: Headers,
        cookies: CookieJar,
        ssl: ssl_module.SSLContext | bool | None = None,
        connect_timeout: float | None = 10.0,
    ) -> None:
        self.base = base
        self.extra_headers = headers
        self.cookies = cookies
        self.connect_timeout = connect_timeout
        if base.tls:
            if not isinstance(ssl, ssl_module.SSLContext):
                ssl = ssl_module.create_default_context()
            self.ssl: ssl_module.SSLContext | None = ssl
        else:
            self.ssl = None
        self._idle: list[HttpConnection] = []
        self._open: set[HttpConnection] = set()
        self.closed = False

    async def connection(self, fresh: bool = False) -> HttpConnection:
        if self.closed:
            raise lost("the client is closed")
        while self._idle and not fresh:
            conn = self._idle.pop()
            # An idle connection the server has closed reads as EOF: drop it.
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.base.host,
                    self.base.port,
                    ssl=self.ssl,
                    server_hostname=self.base.host if self.ssl is not None else None,
                    limit=_READ_SIZE,
                )
        except TimeoutError:
            raise lost(f"could not connect within {self.connect_timeout}s") from None
        except (OSError, ssl_module.SSLError) as exc:
            raise lost(f"could not connect to {self.base.host}:{self.base.port}: {exc}") from exc
        conn = HttpConnection(self, reader, writer)
        self._open.add(conn)
        return conn

    def forget(self, conn: HttpConnection) -> None:
        self._open.discard(conn)

    def release(self, conn: HttpConnection) -> None:
        if self.closed:
            conn.close()
        else:
            self._idle.append(conn)

    def request_headers(self, extra: Iterable[tuple[str, str]] = ()) -> Headers:
        headers: Headers = [("Host", self.base.host_header)]
        headers.extend(extra)
        headers.extend(self.extra_headers)
        cookie = self.cookies.header()
        if cookie is not None:
            headers.append(("Cookie", cookie))
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        timeout: float | None,
    ) -> Response:
        """Send a request and read its head (within ``timeout``); a stale kept-alive
        connection is retried once on a new one."""
        for attempt in (0, 1):
            conn = await self.connection(fresh=attempt == 1)
            reused, conn.reused = conn.reused, False
            try:
                response = await conn.request(
                    method, path, self.request_headers(headers), body, timeout
                )
            except ConnectionLost:
                if reused:
                    continue
                raise
            self.cookies.update(response.headers)
            return response
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self.closed = True
        for conn in list(self._open):
            conn.close()
        for conn in list(self._open):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.writer.wait_closed(), 1.0)
        self._open.clear()
        self._idle.clear()
