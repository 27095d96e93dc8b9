"""A listening socket shared by several mounted Servers, plus a fallback.

Requests go to the Server with the longest prefix that owns their path;
anything else goes to the fallback handler (404 by default).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastsockjs.aio.endpoint import Endpoint
from fastsockjs.aio.http import Exchange, HttpProtocol
from fastsockjs.aio.timers import DeadlineScheduler
from fastsockjs.protocol.http import TEXT_PLAIN, HttpError, Request
from fastsockjs.protocol.routing import MethodNotAllowed, NotFound, owns, route
from fastsockjs.transports import HANDLERS

if TYPE_CHECKING:
    from fastsockjs.server import Server

_log = logging.getLogger("fastsockjs.error")
_access = logging.getLogger("fastsockjs.access")

#: A fallback gets the request and returns (status, headers, body), maybe awaitably.
Response = tuple[int, list[tuple[str, str]], bytes]
Fallback = Callable[[Request], "Response | Awaitable[Response]"]

NOT_FOUND_BODY = b"404 Error: Page not found\n"


class Listener:
    """Owns the mounts, the deadline scheduler and the open connections."""

    def __init__(
        self,
        fallback: Fallback | None = None,
        *,
        max_body: int = 1024 * 1024,
        max_request_line: int = 8192,
    ) -> None:
        self.endpoints: list[Endpoint] = []
        self.fallback = fallback
        self.max_body = max_body
        self.max_request_line = max_request_line
        self.connections: set[HttpProtocol] = set()
        self.servers: list[asyncio.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: DeadlineScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- mounting ----------------------------------------------------------------
    def mount(self, endpoint: Endpoint) -> None:
        for other in self.endpoints:
            if other.prefix == endpoint.prefix:
                raise ValueError(f"prefix {endpoint.prefix!r} is already mounted")
        self.endpoints.append(endpoint)
        self.endpoints.sort(key=lambda e: len(e.prefix), reverse=True)
        # WebSocket messages may be as large as the largest mount allows.
        self.max_body = max(self.max_body, endpoint.options.max_message_size)

    # -- loop-bound services -------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def scheduler(self) -> DeadlineScheduler:
        if self._scheduler is None:
            self._scheduler = DeadlineScheduler(self.loop)
        return self._scheduler

    def spawn(self, awaitable: Any) -> None:
        task = self.loop.create_task(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("handler task failed", exc_info=task.exception())

    # -- serving -------------------------------------------------------------------
    async def listen(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        backlog: int = 1024,
    ) -> asyncio.Server:
        """Start accepting; returns the asyncio Server (port 0 picks a free port)."""
        self._loop = asyncio.get_running_loop()
        if sock is not None:
            server = await self._loop.create_server(
                self.protocol_factory, sock=sock, backlog=backlog
            )
        else:
            server = await self._loop.create_server(
                self.protocol_factory, host, port, reuse_port=reuse_port or None, backlog=backlog
            )
        self.servers.append(server)
        return server

    def protocol_factory(self) -> HttpProtocol:
        return HttpProtocol(self)

    @property
    def port(self) -> int:
        """The first bound port (handy after listening on port 0)."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()
        if self._scheduler is not None:
            self._scheduler.close()

    # -- requests ------------------------------------------------------------------
    def dispatch(self, request: Request, exchange: Exchange) -> None:
        path = request.path
        for endpoint in self.endpoints:
            if owns(endpoint.prefix, path):
                self._sockjs(endpoint, request, exchange, path[len(endpoint.prefix) :])
                return
        self._fallback(request, exchange)

    def _sockjs(self, endpoint: Endpoint, request: Request, exchange: Exchange, rest: str) -> None:
        found = route(endpoint.options, request.method, rest)
        if isinstance(found, NotFound):
            exchange.respond(404, [("Content-Type", TEXT_PLAIN)], NOT_FOUND_BODY)
        elif isinstance(found, MethodNotAllowed):
            raise HttpError(405, "", [("Allow", ", ".join(found.allowed))])
        else:
            HANDLERS[found.kind](endpoint, request, exchange, found)

    def _fallback(self, request: Request, exchange: Exchange) -> None:
        if self.fallback is None:
            exchange.respond(404, [("Content-Type", TEXT_PLAIN)], NOT_FOUND_BODY)
            return
        result = self.fallback(request)
        if inspect.isawaitable(result):

            async def finish() -> None:
                try:
                    status, headers, body = await result
                except Exception:
                    _log.exception("fallback handler failed")
                    exchange.error(HttpError(500, "500 - Internal Server Error"))
                    return
                exchange.respond(status, list(headers), body)

            self.spawn(finish())
        else:
            status, headers, body = result  # type: ignore[misc]
            exchange.respond(status, list(headers), body)
