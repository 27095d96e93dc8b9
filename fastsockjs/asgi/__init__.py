"""ASGI support, both ways.

* :class:`SockJSApp`: SockJS ``Server``\\ s as an ASGI 3 application, to run
  under uvicorn (or any ASGI server), on its own or mounted in a
  Starlette / FastAPI app, optionally with a fallback ASGI app for every other
  path.
* :func:`forward`: the native server's fallback as an ASGI server, so that
  ``Listener(fallback=forward(fastapi_app))`` serves a FastAPI app and SockJS
  on one port (SockJS at native speed).

See docs/asgi.md.
"""

from typing import Any

from fastsockjs.asgi._common import ASGIApp, ClientDisconnected, is_asgi_app
from fastsockjs.asgi.app import SockJSApp
from fastsockjs.asgi.forward import AsgiFallback, forward

__all__ = ["ASGIApp", "AsgiFallback", "ClientDisconnected", "SockJSApp", "forward", "is_asgi_app"]


def as_fallback(fallback: Any) -> Any:
    """``fallback`` itself, or :func:`forward` of it when it is an ASGI app."""
    if fallback is not None and not hasattr(fallback, "handle_exchange") and is_asgi_app(fallback):
        return forward(fallback)
    return fallback
