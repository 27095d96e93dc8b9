"""The native host: asyncio sockets, HTTP/1.1 with httptools, WebSocket framing.

:class:`~fastsockjs.aio.listener.Listener` owns an
:class:`~fastsockjs.engine.core.Engine`; :func:`~fastsockjs.aio.forward.forward`
runs an ASGI application behind it for the paths outside the SockJS prefixes.
"""

from fastsockjs.aio.forward import AsgiFallback, forward

__all__ = ["AsgiFallback", "forward"]
