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
from typing import Any

from fastsockjs.aio.endpoint import Endpoint
from fastsockjs.aio.http import Exchange, HttpProtocol
from fastsockjs.aio.timers import LoopTimerQueue
from fastsockjs.protocol.http import TEXT_PLAIN, HttpError, Request
from fastsockjs.protocol.routing import MethodNotAllowed, NotFound, owns, route
from fastsockjs.transports import HANDLERS
from fastsockjs.workers import worker_id

_log = logging.getLogger("fastsockjs.error")
_access = logging.getLogger("fastsockjs.access")

#: A fallback gets the request and returns (status, headers, body), maybe awaitably;
#: or it answers through the exchange itself (``handle_exchange(request, exchange,
#: listener)``, as ``fastsockjs.asgi.forward(app)`` does); or it is an ASGI 3
#: application (``app(scope, receive, send)``), wrapped with ``forward`` on first use.
Response = tuple[int, list[tuple[str, str]], bytes]
Fallback = Callable[..., "Response | Awaitable[Any] | None"]

NOT_FOUND_BODY = b"404 Error: Page not found\n"


# Endpoints a page of any origin can drive without CORS (script tags, iframes),
# so no Origin check can protect them: refused outright once origins are limited.
_UNCHECKABLE = frozenset(("iframe", "htmlfile", "jsonp", "jsonp_send"))
# Endpoints that only answer; CORS headers (or their absence) protect them.
_ANSWER_ONLY = frozenset(("greeting", "info", "info_options", "options"))


def _check_origin(endpoint: Endpoint, request: Request, kind: str) -> None:
    if kind in _UNCHECKABLE:
        raise HttpError(404, "404 Error: Page not found\n")
    if kind in _ANSWER_ONLY:
        return
    headers = request.headers
    origin = headers.get("origin", headers.get("sec-websocket-origin"))
    if not endpoint.options.origin_allowed(origin):
        raise HttpError(403, "Origin not allowed.")


_REFUSAL = {
    400: "bad_request",
    403: "origin",
    404: "unknown_session",
    413: "too_large",
    500: "bad_payload",
    503: "capacity",
}


class Listener:
    """Owns the mounts, the deadline heap and the open connections."""

    def __init__(
        self,
        fallback: Fallback | None = None,
        *,
        max_body: int = 8 * 1024 * 1024,
        max_request_line: int = 8192,
        max_header_bytes: int = 64 * 1024,
        request_timeout: float = 30.0,
        keepalive_timeout: float = 75.0,
        metrics_path: str | None = None,
        worker: str | None = None,
    ) -> None:
        """``fallback`` answers requests outside every prefix (404 without one).

        Limits: ``max_body`` bytes of request body (413; raised to the largest
        ``max_message_size`` of the mounted servers; an ``xhr_send`` body may
        carry many messages, each bounded by ``max_message_size``), ``max_request_line``
        bytes of URL (414), ``max_header_bytes`` of header block (431);
        ``request_timeout`` seconds for a request's head and body to arrive
        (408), ``keepalive_timeout`` seconds an idle connection is kept.
        ``metrics_path`` (e.g. ``"/metrics"``) serves Prometheus metrics there
        (needs the ``prometheus`` extra); off by default. Every metric is labelled
        ``worker`` (default: this process's :func:`fastsockjs.workers.worker_id`).
        """
        self.metrics_path = metrics_path
        self.worker = worker if worker is not None else worker_id()
        if metrics_path is not None:
            import prometheus_client  # noqa: F401 - fail at construction, not per scrape
        self.endpoints: list[Endpoint] = []
        self.fallback = fallback
        self.max_body = max_body
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.request_timeout = request_timeout
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[HttpProtocol] = set()
        self.bytes_in = 0
        self.bytes_out = 0
        self.http_errors: dict[int, int] = {}
        self.servers: list[asyncio.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: LoopTimerQueue | None = None
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
    def timers(self) -> LoopTimerQueue:
        if self._timers is None:
            self._timers = LoopTimerQueue(self.loop)
        return self._timers

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

    async def shutdown(
        self, timeout: float = 5.0, code: int = 1001, reason: str = "Server shutting down"
    ) -> None:
        """Graceful stop: accept nothing new, close every session with ``code``,
        let the close frames go out for at most ``timeout`` seconds, then end
        what is left. ``'close'`` is emitted exactly once for every session."""
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        for endpoint in self.endpoints:
            for session in endpoint.all_sessions():
                try:
                    session.close(code, reason)
                except Exception:
                    _log.exception("closing %r at shutdown failed", session)
        loop = self.loop
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if not any(e.live_sessions for e in self.endpoints) and not any(
                c.busy for c in self.connections
            ):
                break
            await asyncio.sleep(0.05)
        for endpoint in self.endpoints:
            for session in endpoint.all_sessions():
                session.expire()
        # An ASGI fallback (fastsockjs.asgi.forward) runs its lifespan shutdown.
        fallback_shutdown = getattr(self.fallback, "shutdown", None)
        if fallback_shutdown is not None and inspect.iscoroutinefunction(fallback_shutdown):
            try:
                await fallback_shutdown()
            except Exception:
                _log.exception("fallback shutdown failed")
        await self.close()

    def stats(self) -> dict[str, Any]:
        """Listener-wide figures plus each mount's (see Server.stats())."""
        return {
            "connections": len(self.connections),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "http_errors": dict(self.http_errors),
            "endpoints": [e.stats() for e in self.endpoints],
        }

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()
        if self._timers is not None:
            self._timers.close()

    # -- requests ------------------------------------------------------------------
    def dispatch(self, request: Request, exchange: Exchange) -> None:
        path = request.path
        exchange.proto.endpoint = None
        if path == self.metrics_path and request.method == "GET":
            from fastsockjs.metrics import exposition

            body, ctype = exposition(self, self.worker)
            exchange.respond(200, [("Content-Type", ctype)], body)
            return
        for endpoint in self.endpoints:
            if owns(endpoint.prefix, path):
                exchange.proto.endpoint = endpoint
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
            try:
                if endpoint.options.allowed_origins is not None:
                    _check_origin(endpoint, request, found.kind)
                HANDLERS[found.kind](endpoint, request, exchange, found)
            except HttpError as err:
                endpoint.refused(_REFUSAL.get(err.status, str(err.status)))
                raise

    def _fallback(self, request: Request, exchange: Exchange) -> None:
        if self.fallback is not None and self.fallback is not self.__dict__.get("_fallback_seen"):
            # First request for this fallback: an ASGI app gets wrapped (once).
            from fastsockjs.asgi import as_fallback

            self.fallback = as_fallback(self.fallback)
            self.__dict__["_fallback_seen"] = self.fallback
        fallback = self.fallback
        if fallback is None:
            exchange.respond(404, [("Content-Type", TEXT_PLAIN)], NOT_FOUND_BODY)
            return
        handle = getattr(fallback, "handle_exchange", None)
        if handle is not None:
            handle(request, exchange, self)
            return
        result = fallback(request)
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
