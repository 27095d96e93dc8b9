"""An asyncio SockJS client for any SockJS server: websocket, xhr-streaming and
xhr-polling, chosen as sockjs-client chooses. See docs/client.md."""

from fastsockjs.client.connection import Connection, connect
from fastsockjs.client.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    ProtocolError,
    SockJSError,
)
from fastsockjs.client.protocol import TRANSPORTS

__all__ = [
    "connect",
    "Connection",
    "ConnectionClosed",
    "ConnectionLost",
    "ProtocolError",
    "ConnectError",
    "SockJSError",
    "TRANSPORTS",
]
