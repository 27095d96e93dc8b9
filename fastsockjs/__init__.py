"""fastsockjs: a fast, complete SockJS server on asyncio, httptools and uvloop."""

from fastsockjs.aio.listener import Listener
from fastsockjs.connection import Connection
from fastsockjs.frames import speedups_enabled
from fastsockjs.options import Options, OptionsError, Refuse, WebSocketCompression
from fastsockjs.protocol.http import Request
from fastsockjs.protocol.session import ReadyState
from fastsockjs.runner import freeze_startup_objects, new_event_loop, run, serve, ssl_context
from fastsockjs.server import Server

__version__ = "0.1.0"

__all__ = [
    "Connection",
    "Listener",
    "Options",
    "OptionsError",
    "ReadyState",
    "Refuse",
    "Request",
    "Server",
    "WebSocketCompression",
    "freeze_startup_objects",
    "new_event_loop",
    "run",
    "serve",
    "speedups_enabled",
    "ssl_context",
    "__version__",
]
