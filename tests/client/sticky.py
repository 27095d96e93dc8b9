"""A sticky load balancer in miniature, for the JSESSIONID tests: a TCP proxy
that gives each client without a JSESSIONID cookie one (Set-Cookie on the
response), and records every request's line and Cookie header.

Clients do not pipeline, so the server's bytes after a request was forwarded
begin that request's response: the cookie goes in after its status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import httptools


class _Requests:
    def __init__(self, proxy: StickyProxy) -> None:
        self.proxy = proxy
        self.url = b""
        self.cookie: str | None = None
        self.inject: list[bytes | None] = []

    def on_message_begin(self) -> None:
        self.url, self.cookie = b"", None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"cookie":
            self.cookie = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.proxy.requests.append((self.url.decode("latin-1"), self.cookie))
        if self.cookie is None or "JSESSIONID=" not in self.cookie:
            value = f"sticky-{next(self.proxy.counter)}"
            self.inject.append(f"Set-Cookie: JSESSIONID={value}; Path=/\r\n".encode())
        else:
            self.inject.append(None)


class StickyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str | None]] = []
        self.counter = itertools.count(1)
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> StickyProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            cwriter.close()
            return
        requests = _Requests(self)
        parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(requests)

        async def upstream() -> None:
            nonlocal parser
            while data := await creader.read(65536):
                if parser is not None:
                    try:
                        parser.feed_data(data)
                    except httptools.HttpParserUpgrade:
                        parser = None  # a WebSocket from here on: bytes only
                uwriter.write(data)
                await uwriter.drain()
            uwriter.close()

        async def downstream() -> None:
            head = b""
            while data := await ureader.read(65536):
                if requests.inject and (head or data.startswith(b"HTTP/")):
                    head += data
                    end = head.find(b"\r\n")
                    if end < 0:
                        continue
                    cookie = requests.inject.pop(0)
                    if cookie is not None:
                        head = head[: end + 2] + cookie + head[end + 2 :]
                    data, head = head, b""
                cwriter.write(data)
                await cwriter.drain()
            cwriter.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (cwriter, uwriter):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)
