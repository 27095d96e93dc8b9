"""Server: options, the ``'connection'`` event, mounting and broadcast."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from fastsockjs import frames
from fastsockjs.aio.endpoint import Endpoint
from fastsockjs.aio.listener import Fallback, Listener
from fastsockjs.connection import Connection
from fastsockjs.events import EventEmitter
from fastsockjs.options import Options, make_options


class Server(EventEmitter):
    """A SockJS service, modelled on sockjs-node's ``createServer()``.

    ``server.on('connection', handler)`` (alias ``'open'``) receives each new
    :class:`Connection`. Mount it with :meth:`install_handlers`; one Server can
    be mounted at several prefixes, each with its own option overrides.
    """

    __slots__ = ("options", "endpoints", "log")

    _aliases = {"open": "connection"}

    def __init__(self, options: Options | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.options = make_options(options, **kwargs)
        self.endpoints: list[Endpoint] = []
        self.log = self.options.logger or logging.getLogger("fastsockjs")

    def install_handlers(self, listener: Listener, **overrides: Any) -> Endpoint:
        """Mount on ``listener``; ``overrides`` replace options (e.g. ``prefix``)."""
        options = make_options(self.options, **overrides)
        endpoint = Endpoint(self, options, listener)
        listener.mount(endpoint)
        self.endpoints.append(endpoint)
        return endpoint

    def emit(self, event: str, *args: Any) -> bool:
        if self._spawn is None and self.endpoints:
            self._spawn = self.endpoints[0].listener.spawn
        return super().emit(event, *args)

    def stats(self) -> dict[str, Any]:
        """Sessions by transport, opened/closed totals, messages and bytes in and
        out, queued bytes, drops and refusals by reason: summed over every mount."""
        total: dict[str, Any] = {
            "sessions": 0,
            "sessions_by_transport": {},
            "opened": 0,
            "closed": 0,
            "messages_in": 0,
            "messages_out": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "dropped": 0,
            "queued_bytes": 0,
            "refused": {},
        }
        for endpoint in self.endpoints:
            part = endpoint.stats()
            for key, value in part.items():
                if isinstance(value, dict):
                    into = total[key]
                    for k, v in value.items():
                        into[k] = into.get(k, 0) + v
                elif key != "prefix":
                    total[key] += value
        total["mounts"] = [e.prefix for e in self.endpoints]
        return total

    def connections(self) -> list[Connection]:
        """Every open connection of this server (all prefixes, all transports)."""
        out: list[Connection] = []
        for endpoint in self.endpoints:
            out.extend(s.connection for s in endpoint.all_sessions() if s.state == 1)
        return out

    def broadcast(self, message: str, connections: Iterable[Connection]) -> int:
        """Write ``message`` to each connection, encoding it once; returns how many took it."""
        quoted = frames.quote(message)
        sent = 0
        for conn in connections:
            session = conn._session
            send_quoted = getattr(session, "send_quoted", None)
            if send_quoted is not None:
                sent += send_quoted(quoted)
            else:
                sent += session.send(message)
        return sent


async def serve(
    *servers: Server,
    host: str = "127.0.0.1",
    port: int = 0,
    fallback: Fallback | None = None,
    reuse_port: bool = False,
    metrics_path: str | None = None,
    **limits: Any,
) -> Listener:
    """Mount ``servers`` (each at its own ``prefix``) on a new listener and start it;
    ``metrics_path`` serves Prometheus metrics there (the ``prometheus`` extra), and
    ``limits`` are the Listener's (``max_body``, ``request_timeout``, ...)."""
    listener = Listener(fallback, metrics_path=metrics_path, **limits)
    for server in servers:
        server.install_handlers(listener)
    await listener.listen(host, port, reuse_port=reuse_port)
    return listener


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where available, else the stdlib one."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(
    *servers: Server,
    host: str = "127.0.0.1",
    port: int = 8081,
    fallback: Fallback | None = None,
    use_uvloop: bool = True,
    shutdown_timeout: float = 5.0,
    **limits: Any,
) -> None:
    """Serve until SIGINT / SIGTERM, then shut down gracefully: every session
    gets ``c[1001,"Server shutting down"]``, with ``shutdown_timeout`` seconds
    for it to go out. ``limits`` go to the Listener (``max_body``, ...)."""
    loop = new_event_loop() if use_uvloop else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        import signal

        listener = await serve(*servers, host=host, port=port, fallback=fallback, **limits)
        logging.getLogger("fastsockjs").info("listening on http://%s:%d", host, listener.port)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logging.getLogger("fastsockjs").info("shutting down")
        await listener.shutdown(shutdown_timeout)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
