"""SockJS as an ASGI 3 application (:class:`SockJSApp`): run it under uvicorn
(or any ASGI server), on its own or mounted in a Starlette / FastAPI app,
optionally with a fallback ASGI app for every other path.

The other direction, an ASGI application behind the native server, is
:func:`fastsockjs.aio.forward` (``Listener(fallback=app)`` does it for you).
See docs/asgi.md.
"""

from fastsockjs.asgi.app import SockJSApp
from fastsockjs.protocol.asgi import ASGIApp, ClientDisconnected, is_asgi_app

__all__ = ["ASGIApp", "ClientDisconnected", "SockJSApp", "is_asgi_app"]
