"""TLS on the native host's sockets, with failed handshakes logged.

``loop.create_server(ssl=...)`` wraps each connection in the loop's own TLS
protocol and drops a failed handshake without a word: the loop logs it only in
its debug mode, and the application's protocol never hears of the connection.
Here the listening socket is plain, and our factory builds that same TLS
protocol class per connection (uvloop's compiled one, or asyncio's on the
stdlib loop) with a waiter of our own, so the handshake's outcome reaches
``fastsockjs.tls`` with the peer's address. Encryption runs in the same code as
with ``ssl=``; only the handshake's end is seen.

Doing the handshake in a task of our own (``loop.start_tls``) cannot work on
uvloop: it starts reading a new connection right after ``connection_made``, so
the ClientHello could reach the plain protocol before ``start_tls`` took over.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("fastsockjs.tls")

__all__ = ["TlsFactory", "tls_protocol_factory"]


def _ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> type[Any] | None:
    """The TLS protocol the loop itself would use, or None for a loop we do
    not know (it then gets ``create_server(ssl=...)``, unlogged)."""
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    try:
        if uvloop is not None and isinstance(loop, uvloop.Loop):
            from uvloop.loop import SSLProtocol as uv_ssl_protocol  # type: ignore[attr-defined]

            return uv_ssl_protocol  # type: ignore[no-any-return]
        if isinstance(loop, asyncio.BaseEventLoop):
            from asyncio.sslproto import SSLProtocol

            return SSLProtocol
    except ImportError:  # neither is public API: a release may move it
        pass
    return None


def _describe(exc: BaseException) -> str:
    # The loop fails an EOF in mid-handshake with the bare class ConnectionResetError.
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Handshake:
    """One connection's TLS handshake, seen from its waiter: the peer for the log,
    and the transport until the handshake ends (so that closing the listener can
    abort it; asyncio's Server.wait_closed waits for it otherwise, since 3.12)."""

    __slots__ = ("peer", "transport", "pending")

    def __init__(self, pending: set[asyncio.Transport]) -> None:
        self.peer: Any = None
        self.transport: asyncio.Transport | None = None
        self.pending = pending

    def started(self, transport: asyncio.Transport) -> None:
        self.peer = transport.get_extra_info("peername")
        self.transport = transport
        self.pending.add(transport)

    def done(self, waiter: asyncio.Future[None]) -> None:
        # (The waiter ends on every path: success, failure, timeout, connection lost.)
        transport, self.transport = self.transport, None
        if transport is not None:
            self.pending.discard(transport)
        if waiter.cancelled():
            return
        exc = waiter.exception()
        if exc is not None and _log.isEnabledFor(logging.DEBUG):
            # The TLS protocol has closed the connection already (on every path
            # that fails its waiter); this only says why.
            peer = self.peer
            address = peer[0] if isinstance(peer, tuple) and peer else "-"
            _log.debug("%s - TLS handshake failed: %s", address, _describe(exc))


class TlsFactory:
    """A protocol factory for a plain ``create_server`` that serves TLS with
    ``context`` around ``app_factory``'s protocols, as ``ssl=context`` would (same
    handshake timeout), logging failed handshakes at debug level."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        base: type[Any],
        app_factory: Callable[[], asyncio.BaseProtocol],
        context: ssl.SSLContext,
        handshake_timeout: float,
    ) -> None:
        self.loop = loop
        self.app_factory = app_factory
        self.context = context
        self.handshake_timeout = handshake_timeout
        #: Transports whose handshake is under way.
        self.pending: set[asyncio.Transport] = set()

        class ServerTls(base):  # type: ignore[misc]
            """The loop's TLS protocol, which also tells its handshake its transport."""

            def __init__(self, handshake: _Handshake, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._fastsockjs_handshake = handshake

            def connection_made(self, transport: asyncio.Transport) -> None:
                self._fastsockjs_handshake.started(transport)
                super().connection_made(transport)

        self._cls = ServerTls

    def __call__(self) -> asyncio.BaseProtocol:
        waiter: asyncio.Future[None] = self.loop.create_future()
        handshake = _Handshake(self.pending)
        waiter.add_done_callback(handshake.done)
        return self._build(handshake, self.app_factory(), waiter)

    def _build(
        self, handshake: _Handshake, app: asyncio.BaseProtocol, waiter: asyncio.Future[None]
    ) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = self._cls(
            handshake, self.loop, app, self.context, waiter,
            server_side=True, server_hostname=None, ssl_handshake_timeout=self.handshake_timeout,
        )
        return protocol

    def abort_pending(self) -> None:
        """Abort every connection still in its handshake (the listener is closing)."""
        for transport in list(self.pending):
            transport.abort()


def tls_protocol_factory(
    loop: asyncio.AbstractEventLoop,
    app_factory: Callable[[], asyncio.BaseProtocol],
    context: ssl.SSLContext,
    handshake_timeout: float,
) -> TlsFactory | None:
    """A :class:`TlsFactory` on the loop's own TLS protocol; None when that
    protocol is unknown (the caller then passes ``ssl=`` to ``create_server``)."""
    base = _ssl_protocol_class(loop)
    if base is None:
        return None
    factory = TlsFactory(loop, base, app_factory, context, handshake_timeout)
    try:
        # One protocol built as every connection's will be, with no connection: a
        # loop release that changed the constructor leaves TLS to ``ssl=`` instead
        # of failing every connection.
        factory._build(_Handshake(set()), asyncio.Protocol(), loop.create_future())
    except TypeError:
        _log.debug("%s.%s takes other arguments: failed handshakes go unlogged",
                   base.__module__, base.__qualname__)
        return None
    return factory
