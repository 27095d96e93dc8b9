"""Running servers in this process: ``serve`` (start listening, return) and
``run`` (serve until SIGINT / SIGTERM, then shut down gracefully). The command
line and every ``--workers`` worker run through :func:`run`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import signal
import ssl as _ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastsockjs.aio.listener import Fallback, Listener
from fastsockjs.engine.core import HealthCheck
from fastsockjs.server import Server
from fastsockjs.workers import worker_id

if TYPE_CHECKING:
    from fastsockjs.broker import Broker

__all__ = [
    "broker_check", "freeze_startup_objects", "new_event_loop", "run", "serve", "ssl_context",
]

_log = logging.getLogger("fastsockjs")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where available, else the stdlib one."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def ssl_context(
    certfile: str,
    keyfile: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
) -> _ssl.SSLContext:
    """A server TLS context from PEM files, as uvicorn's ``--ssl-*`` options
    build it: the certificate chain (and its key, unless ``certfile`` holds
    it), the key's password, and CA certificates to verify clients against
    (client certificates are then asked for, not required). ALPN offers
    ``http/1.1``: the only protocol served."""
    context = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile, password)
    if ca_certs:
        context.load_verify_locations(ca_certs)
        context.verify_mode = _ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


async def serve(
    *servers: Server,
    host: str = "127.0.0.1",
    port: int = 0,
    fallback: Fallback | None = None,
    reuse_port: bool = False,
    metrics_path: str | None = None,
    ssl: _ssl.SSLContext | None = None,
    gc_freeze: bool = False,
    **limits: Any,
) -> Listener:
    """Mount ``servers`` (each at its own ``prefix``) on a new listener and start it;
    ``metrics_path`` serves Prometheus metrics there (the ``prometheus`` extra),
    ``ssl`` serves https/wss (see :func:`ssl_context`), and ``limits`` are the
    Listener's (``max_body``, ``request_timeout``, ``health_path``,
    ``forwarded_allow_ips``, ...). An ASGI ``fallback`` runs its lifespan startup
    before the socket listens, so that what it starts is there for the first request.
    ``gc_freeze=True`` calls :func:`freeze_startup_objects` once the socket listens:
    off by default here, since ``serve`` runs inside a program (a test suite, an
    application's own loop) whose process-wide GC state is not its to change;
    :func:`run`, which owns its process, does it by default."""
    limits.setdefault("worker", worker_id())
    listener = Listener(fallback, metrics_path=metrics_path, ssl=ssl, **limits)
    for server in servers:
        server.install_handlers(listener)
    startup = getattr(listener.fallback, "startup", None)
    if startup is not None and inspect.iscoroutinefunction(startup):
        await startup()
    await listener.listen(host, port, reuse_port=reuse_port)
    if gc_freeze:
        freeze_startup_objects()
    return listener


def freeze_startup_objects() -> None:
    """``gc.collect()`` then ``gc.freeze()``: what start-up left alive (modules,
    classes, the servers, the listener: most of a server's objects) moves to the
    permanent generation, which no collection traverses. Otherwise start-up's
    survivors still sit in the younger generations when load begins, and the
    first gen-1 collection walks them (about 1.2 ms at 10k msgs/s of WebSocket
    echo, docs/benchmarks.md); every full collection later walks them all.
    Reference counting still frees a frozen object; only a reference cycle
    among objects frozen here and dropped later is never reclaimed, a leak
    bounded by what start-up made. For a process that owns its event loop, once
    everything is mounted and listening."""
    gc.collect()
    gc.freeze()


def broker_check(broker: Broker) -> HealthCheck:
    """The broker's health as a health check (cheap: it reads the broker's state)."""

    def check() -> tuple[bool, str]:
        health = broker.health
        return health.ok, health.reason

    return check


def run(
    *servers: Server,
    host: str = "127.0.0.1",
    port: int = 8081,
    fallback: Fallback | None = None,
    use_uvloop: bool = True,
    shutdown_timeout: float = 5.0,
    reuse_port: bool = False,
    broker: Broker | None = None,
    on_listening: Callable[[int], None] | None = None,
    metrics_path: str | None = None,
    ssl: _ssl.SSLContext | None = None,
    gc_freeze: bool = True,
    **limits: Any,
) -> None:
    """Serve until SIGINT / SIGTERM, then shut down gracefully: every session
    gets ``c[1001,"Server shutting down"]``, with ``shutdown_timeout`` seconds
    for it to go out (polls keep being answered meanwhile; see
    ``Listener.shutdown``). ``broker`` is started first and closed last, and its
    health is part of the health endpoint (``health_path=...``) as a "drain" check;
    ``on_listening(port)`` is called once the socket listens; ``ssl`` serves
    https/wss; ``limits`` go to the Listener (``max_body``, ...). Once the broker
    runs and the socket listens, and before ``on_listening``, the start-up objects
    are frozen out of the garbage collector's reach (:func:`freeze_startup_objects`)
    unless ``gc_freeze=False``."""
    loop = new_event_loop() if use_uvloop else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if broker is not None:
            await broker.start()
        listener = await serve(
            *servers, host=host, port=port, fallback=fallback, reuse_port=reuse_port,
            metrics_path=metrics_path, ssl=ssl, **limits,
        )
        if broker is not None:
            listener.engine.add_health_check(broker_check(broker), drain=True)
        if gc_freeze:
            freeze_startup_objects()
        _log.info(
            "listening on %s://%s:%d (worker %s, pid %d%s)", "https" if ssl else "http",
            host, listener.port,
            listener.worker, os.getpid(), ", SO_REUSEPORT" if reuse_port else "",
        )
        if on_listening is not None:
            on_listening(listener.port)
        await stop.wait()
        _log.info("shutting down")
        await listener.shutdown(shutdown_timeout)
        if broker is not None:
            await broker.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
