"""pytest kit for SockJS services: ``serve(*servers)`` runs Servers on an
in-process listener (127.0.0.1, a free port) for the length of an ``async with``;
the ``sockjs_serve`` fixture hands it to a test.

Registered as a pytest plugin (entry point ``pytest11``), so installing
fastsockjs makes the fixture available. It needs no particular async plugin:
``serve`` runs on whatever loop the test runs on (pytest-asyncio in strict or
auto mode, anyio on asyncio). See docs/testing.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fastsockjs.aio.listener import Fallback
from fastsockjs.runner import serve as _listen
from fastsockjs.server import Server

__all__ = ["serve", "sockjs_serve"]


@contextlib.asynccontextmanager
async def serve(
    *servers: Server,
    fallback: Fallback | None = None,
    shutdown_timeout: float = 1.0,
    **limits: Any,
) -> AsyncIterator[str]:
    """Mount ``servers`` (each at its own ``prefix``) on a new listener on
    127.0.0.1, port 0, and yield its base URL, ``http://127.0.0.1:PORT``. On exit
    every session is closed (1001, as a server shutdown) and the listener stops.
    ``limits`` go to the Listener (``max_body``, ``request_timeout``, ...)."""
    listener = await _listen(*servers, host="127.0.0.1", port=0, fallback=fallback, **limits)
    try:
        yield f"http://127.0.0.1:{listener.port}"
    finally:
        await listener.shutdown(shutdown_timeout)
        # A later serve() may mount the same servers again: forget this listener.
        for mount in listener.endpoints:
            mount.server.detached(mount)


@pytest.fixture
def sockjs_serve() -> Callable[..., contextlib.AbstractAsyncContextManager[str]]:
    """:func:`serve`: ``async with sockjs_serve(server) as url: ...``."""
    return serve
