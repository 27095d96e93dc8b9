"""The native host's HTTP/1.x connection: :class:`HttpProtocol` (asyncio's
protocol for one connection) and :class:`Exchange` (one request's answer).

They are written once, in ``_connection_py``, and compiled from that same source
into ``_connection`` when the extension is built; this module picks the compiled
one, or the source when it is not built or ``FASTSOCKJS_PURE_PYTHON=1`` (as
``frames`` and ``heads`` pick their kernels).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from fastsockjs.kernels import load

__all__ = ["ConnectionOwner", "Exchange", "HttpProtocol", "LINGER_TIMEOUT", "impl"]

impl: ModuleType = load("aio._connection", "aio._connection_py")

if TYPE_CHECKING:
    from fastsockjs.aio._connection_py import (
        LINGER_TIMEOUT,
        ConnectionOwner,
        Exchange,
        HttpProtocol,
    )
else:
    HttpProtocol = impl.HttpProtocol
    Exchange = impl.Exchange
    ConnectionOwner = impl.ConnectionOwner
    LINGER_TIMEOUT = impl.LINGER_TIMEOUT
