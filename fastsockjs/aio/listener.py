"""A listening socket shared by several mounted Servers, plus a fallback.

Requests go to the Server with the longest prefix that owns their path;
anything else goes to the fallback handler (404 by default).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import ssl as _ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from fastsockjs.aio.forward import forward
from fastsockjs.aio.http import Exchange, HttpProtocol
from fastsockjs.aio.tls import TlsFactory, tls_protocol_factory
from fastsockjs.broker.watch import LoopLag
from fastsockjs.engine.core import NOT_FOUND_BODY, Engine
from fastsockjs.engine.mount import Mount
from fastsockjs.engine.runtime import LoopRuntime
from fastsockjs.options import Options
from fastsockjs.protocol.asgi import is_asgi_app
from fastsockjs.protocol.http import TEXT_PLAIN, HttpError, Request, TrustedProxies
from fastsockjs.protocol.timers import TimerQueue

if TYPE_CHECKING:
    from fastsockjs.server import Server

_log = logging.getLogger("fastsockjs.error")

#: A fallback gets the request and returns (status, headers, body), maybe awaitably;
#: or it answers through the exchange itself (``handle_exchange(request, exchange,
#: listener)``, as ``fastsockjs.aio.forward(app)`` does); or it is an ASGI 3
#: application (``app(scope, receive, send)``), which is wrapped with ``forward``.
Response = tuple[int, list[tuple[str, str]], bytes]
Fallback = Callable[..., "Response | Awaitable[Any] | None"]

__all__ = ["Fallback", "Listener", "NOT_FOUND_BODY", "Response"]


class Listener:
    """The native host: listening sockets, HTTP connections and a fallback,
    around the :class:`~fastsockjs.engine.core.Engine` that holds the mounts."""

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
        health_path: str | None = None,
        max_loop_lag: float = 1.0,
        ssl: _ssl.SSLContext | None = None,
        forwarded_allow_ips: str | Iterable[str] | None = None,
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
        ``worker`` (default ``pid<pid>``; ``fastsockjs.serve`` and the command
        line pass the worker id).
        ``health_path`` (e.g. ``"/_health"``) answers 200 ``ok``, or 503 and the
        reason: the event loop lags more than ``max_loop_lag`` seconds, the
        worker is shutting down, or a check added with
        ``listener.engine.add_health_check`` fails (``fastsockjs.run`` adds its
        broker's health). Off by default.

        ``ssl`` serves https and wss with this context (``listen`` may give
        another per socket); a client that does not finish the TLS handshake
        within ``request_timeout`` is dropped. ``forwarded_allow_ips``: the
        proxies (addresses, networks, ``"*"``) whose ``X-Forwarded-For`` /
        ``Forwarded`` header names the client (``Connection.remote_address``);
        from any other peer the header is ignored. None (default) trusts none.
        """
        self.metrics_path = metrics_path
        self.health_path = health_path
        if max_loop_lag <= 0:
            raise ValueError("max_loop_lag must be > 0")
        self.max_loop_lag = max_loop_lag
        self.loop_lag: LoopLag | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self.worker = worker if worker is not None else f"pid{os.getpid()}"
        if metrics_path is not None:
            import prometheus_client  # noqa: F401 - fail at construction, not per scrape
        self.engine = Engine()
        self._fallback: Any = None
        self.fallback = fallback
        self.max_body = max_body
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.request_timeout = request_timeout
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[HttpProtocol] = set()
        self.bytes_in = 0
        self.bytes_out = 0
        self.servers: list[asyncio.Server] = []
        # The TLS factories of the sockets listening with ``ssl`` (their handshakes
        # under way are aborted on close).
        self._handshakes: list[TlsFactory] = []
        self.ssl = ssl
        self.forwarded = TrustedProxies.parse(forwarded_allow_ips)

    @property
    def fallback(self) -> Any:
        return self._fallback

    @fallback.setter
    def fallback(self, fallback: Any) -> None:
        # An ASGI application is served through the forwarding bridge.
        if fallback is not None and not hasattr(fallback, "handle_exchange") and is_asgi_app(
            fallback
        ):
            fallback = forward(fallback)
        self._fallback = fallback

    # -- mounting ----------------------------------------------------------------
    def mount(self, server: Server, options: Options) -> Mount:
        """Called by ``server.install_handlers(listener)``."""
        mount = self.engine.mount(server, options)
        # WebSocket messages may be as large as the largest mount allows.
        self.max_body = max(self.max_body, options.max_message_size)
        return mount

    @property
    def endpoints(self) -> list[Mount]:
        """The mounts, longest prefix first."""
        return self.engine.mounts

    @property
    def http_errors(self) -> dict[int, int]:
        return self.engine.http_errors

    # -- loop-bound services -------------------------------------------------------
    @property
    def runtime(self) -> LoopRuntime:
        return self.engine.current_runtime()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.runtime.loop

    @property
    def timers(self) -> TimerQueue:
        return self.runtime.timers

    def spawn(self, awaitable: Any) -> None:
        self.runtime.spawn(awaitable)

    # -- serving -------------------------------------------------------------------
    async def listen(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        backlog: int = 1024,
        ssl: _ssl.SSLContext | None = None,
    ) -> asyncio.Server:
        """Start accepting; returns the asyncio Server (port 0 picks a free port).
        ``ssl`` (default: the Listener's) serves TLS on this socket."""
        loop = asyncio.get_running_loop()
        self.engine.bind(loop)
        context = ssl if ssl is not None else self.ssl
        # (HttpProtocol has asyncio.Protocol's methods without deriving from it: a
        # compiled class cannot derive from a Python one.)
        factory = cast("Callable[[], asyncio.BaseProtocol]", self.protocol_factory)
        tls: dict[str, Any] = {}
        if context is not None:
            # A client stalling in the handshake gets no longer than one stalling
            # in its request head; a failed handshake is logged at debug level.
            wrapped = tls_protocol_factory(loop, factory, context, self.request_timeout)
            if wrapped is not None:
                self._handshakes.append(wrapped)
                factory = wrapped
            else:  # a loop whose TLS protocol we do not know: its own, unlogged
                tls = {"ssl": context, "ssl_handshake_timeout": self.request_timeout}
        if sock is not None:
            server = await loop.create_server(factory, sock=sock, backlog=backlog, **tls)
        else:
            server = await loop.create_server(
                factory, host, port, reuse_port=reuse_port or None, backlog=backlog, **tls,
            )
        self.servers.append(server)
        if self.health_path is not None:
            self._watch_loop_lag(loop)
        return server

    def _watch_loop_lag(self, loop: asyncio.AbstractEventLoop) -> None:
        """Measure the loop's lag with a tick every 0.1 s, for the health endpoint."""
        if self.loop_lag is not None:
            return
        lag = self.loop_lag = LoopLag(0.1, loop.time())
        bound = self.max_loop_lag

        def check() -> tuple[bool, str]:
            late = max(lag.last, lag.current(loop.time()))
            if late > bound:
                return False, f"the event loop lags {late:.2f} s (bound {bound:g} s)"
            return True, "ok"

        async def tick() -> None:
            while True:
                await asyncio.sleep(lag.due(loop.time()))
                lag.tick(loop.time())

        self.engine.add_health_check(check)
        self._lag_task = loop.create_task(tick())

    def protocol_factory(self) -> HttpProtocol:
        return HttpProtocol(self)

    @property
    def port(self) -> int:
        """The first bound port (handy after listening on port 0)."""
        return int(self.servers[0].sockets[0].getsockname()[1])

    async def shutdown(
        self, timeout: float = 5.0, code: int = 1001, reason: str = "Server shutting down"
    ) -> None:
        """Graceful stop: close every session with ``code`` and drain, then stop.

        While draining (at most ``timeout`` seconds) the listener still accepts
        and answers: a polling session gets its close frame on its next poll, and
        the health endpoint reports "drain"; new sessions and sends are refused
        with 503. Once every close frame is out (or the time is up) it stops
        accepting, closes idle connections and ends what is left. ``'close'`` is
        emitted exactly once for every session."""
        await self.engine.shutdown(
            timeout, code, reason, busy=lambda: any(c.busy for c in self.connections)
        )
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        # An ASGI fallback (fastsockjs.aio.forward) runs its lifespan shutdown.
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
            **self.engine.stats(),
        }

    async def close(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            self._lag_task = None
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for handshakes in self._handshakes:
            handshakes.abort_pending()
        self._handshakes.clear()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()
        self.engine.close()

    # -- requests ------------------------------------------------------------------
    def dispatch(self, request: Request, exchange: Exchange) -> None:
        path = request.path
        exchange.proto.endpoint = None
        if path == self.health_path and request.method in ("GET", "HEAD"):
            self.engine.answer_health(request, exchange)
            return
        if path == self.metrics_path and request.method == "GET":
            from fastsockjs.metrics import exposition

            body, ctype = exposition(self, self.worker)
            exchange.respond(200, [("Content-Type", ctype)], body)
            return
        resolved = self.engine.resolve(request.method, path)
        if resolved is not None:
            mount, found = resolved
            exchange.proto.endpoint = mount
            self.engine.answer(mount, request, exchange, found)
            return
        self._fallback_request(request, exchange)

    def _fallback_request(self, request: Request, exchange: Exchange) -> None:
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
            status, headers, body = result
            exchange.respond(status, list(headers), body)
