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
from functools import partial
from typing import Any

_log = logging.getLogger("fastsockjs.tls")

__all__ = ["tls_protocol_factory"]


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


def _handshake_done(peer: list[Any], waiter: asyncio.Future[None]) -> None:
    if waiter.cancelled():
        return
    exc = waiter.exception()
    if exc is not None and _log.isEnabledFor(logging.DEBUG):
        # The TLS protocol has closed the connection already (on every path
        # that fails its waiter); this only says why.
        address = peer[0][0] if peer and isinstance(peer[0], tuple) else "-"
        _log.debug("%s - TLS handshake failed: %s", address, _describe(exc))


def tls_protocol_factory(
    loop: asyncio.AbstractEventLoop,
    app_factory: Callable[[], asyncio.BaseProtocol],
    context: ssl.SSLContext,
    handshake_timeout: float,
) -> Callable[[], asyncio.BaseProtocol] | None:
    """A protocol factory for a plain ``create_server`` that serves TLS with
    ``context`` around ``app_factory``'s protocols, as ``ssl=context`` would
    (same handshake timeout), logging failed handshakes at debug level; None
    when the loop's TLS protocol is unknown."""
    base = _ssl_protocol_class(loop)
    if base is None:
        return None
    try:
        # The constructor as this module calls it, tried once here: a loop release
        # that changed it leaves TLS to ``ssl=`` instead of failing every connection.
        base(loop, asyncio.Protocol(), context, loop.create_future(), server_side=True,
             server_hostname=None, ssl_handshake_timeout=handshake_timeout)
    except TypeError:
        _log.debug("%s.%s takes other arguments: failed handshakes go unlogged",
                   base.__module__, base.__qualname__)
        return None

    class ServerTls(base):  # type: ignore[misc, valid-type]
        """The loop's TLS protocol, which also tells its waiter's callback the
        peer (known only once the transport comes)."""

        def __init__(self, peer: list[Any], *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._fastsockjs_peer = peer

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._fastsockjs_peer.append(transport.get_extra_info("peername"))
            super().connection_made(transport)

    def factory() -> asyncio.BaseProtocol:
        waiter: asyncio.Future[None] = loop.create_future()
        # A list, not the protocol: the waiter's callback must not keep the
        # protocol (and its buffers) alive once the connection is gone.
        peer: list[Any] = []
        waiter.add_done_callback(partial(_handshake_done, peer))
        protocol: asyncio.BaseProtocol = ServerTls(
            peer, loop, app_factory(), context, waiter,
            server_side=True, server_hostname=None, ssl_handshake_timeout=handshake_timeout,
        )
        return protocol

    return factory
