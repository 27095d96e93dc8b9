"""The ready-made services behind the command line: echo, close, ticker,
amplify, broadcast, chat (the same set sockjs-node's test server has)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastsockjs.asgi import SockJSApp
from fastsockjs.broker import Broker, MemoryBroker
from fastsockjs.chat import ChatService, ChatStore, rules, store_for
from fastsockjs.connection import Connection
from fastsockjs.options import DEFAULT_SOCKJS_URL
from fastsockjs.server import Server
from fastsockjs.workers import worker_id

#: Environment variable naming the ASGI test server's sockjs-client URL.
ENV_SOCKJS_URL = "FASTSOCKJS_SOCKJS_URL"


def echo(**options: Any) -> Server:
    server = Server(**options)

    @server.on("connection")
    def _open(conn: Connection) -> None:
        conn.on("data", conn.write)

    return server


def close(**options: Any) -> Server:
    """Closes each session as soon as it opens, with 3000 "Go away!"."""
    server = Server(**options)
    server.on("connection", lambda conn: conn.close(3000, "Go away!"))
    return server


def ticker(**options: Any) -> Server:
    """Writes "tick!" every second."""
    server = Server(**options)

    @server.on("connection")
    def _open(conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        handle: list[asyncio.TimerHandle] = []

        def tick() -> None:
            if conn.write("tick!"):
                handle[:] = [loop.call_later(1.0, tick)]

        handle.append(loop.call_later(1.0, tick))
        conn.on("close", lambda: handle[0].cancel())

    return server


def amplify(**options: Any) -> Server:
    """Answers a number n with 2**n "x" characters (1 <= n <= 18)."""
    server = Server(**options)

    @server.on("connection")
    def _open(conn: Connection) -> None:
        def data(message: Any) -> None:
            try:
                n = int(float(message))
            except (TypeError, ValueError, OverflowError):
                n = 1
            n = n if 0 < n < 19 else 1
            conn.write("x" * (2**n))

        conn.on("data", data)

    return server


def broadcast(broker: Broker | None = None, channel: str = "broadcast", **options: Any) -> Server:
    """Every message goes to every connected session (through ``broker``: with a
    shared backend, to the sessions of every process)."""
    server = Server(**options)
    hub = broker if broker is not None else MemoryBroker()

    @server.on("connection")
    def _open(conn: Connection) -> None:
        hub.subscribe(conn, channel)
        conn.on("data", lambda message: hub.publish(channel, message))

    return server


def chat(
    broker: Broker | None = None,
    store: ChatStore | None = None,
    *,
    rate: tuple[int, float] = (rules.RATE_BURST, rules.RATE_PERIOD),
    max_text: int = rules.MAX_TEXT_LENGTH,
    history_length: int = rules.HISTORY_LENGTH,
    **options: Any,
) -> Server:
    """A chat with rooms (``?room=R``), nicknames (``?nick=N``, unique per room),
    presence, the last ``history_length`` messages for joiners, and per-connection
    limits: ``rate`` = (burst, seconds) and ``max_text`` characters.

    Presence and history live in ``store``: by default in Redis when ``broker`` is the
    Redis broker (shared by every worker), else in this process. The JSON wire
    protocol is documented in docs/chat.md; the page is fastsockjs/static/chat.html.
    """
    server = Server(**options)
    hub = broker if broker is not None else MemoryBroker()
    service = ChatService(
        hub, store if store is not None else store_for(hub, history_length),
        worker=worker_id(), rate=rate, max_text=max_text,
    )
    server.on("connection", service.open)
    return server


def testserver(sockjs_url: str, broker: Broker | None = None, **options: Any) -> list[Server]:
    """Configured as sockjs-node's test server, with default limits otherwise
    (``options`` go to every service; ``broker`` carries ``/broadcast``)."""
    common: dict[str, Any] = dict(sockjs_url=sockjs_url, **options)
    return [
        echo(prefix="/echo", response_limit=4096, **common),
        echo(prefix="/disabled_websocket_echo", websocket=False, **common),
        echo(prefix="/cookie_needed_echo", jsessionid=True, **common),
        close(prefix="/close", **common),
        ticker(prefix="/ticker", **common),
        amplify(prefix="/amplify", **common),
        broadcast(prefix="/broadcast", broker=broker, **common),
    ]


def asgi_testserver() -> SockJSApp:
    """:func:`testserver` as an ASGI app (a factory: one per worker), so the official
    protocol suite can run against the ASGI host too::

        uvicorn --factory fastsockjs.apps:asgi_testserver --port 8081

    ``FASTSOCKJS_SOCKJS_URL`` sets the iframe page's sockjs-client URL (the jsDelivr
    address by default). The service list is the command line's own, so the two
    test servers cannot drift."""
    return SockJSApp(*testserver(os.environ.get(ENV_SOCKJS_URL) or DEFAULT_SOCKJS_URL))
