"""The ready-made services behind the command line: echo, close, ticker,
amplify, broadcast, chat (the same set sockjs-node's test server has)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastsockjs.broker import Broker, MemoryBroker
from fastsockjs.connection import Connection
from fastsockjs.server import Server
from fastsockjs.workers import worker_id


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


#: The room of a chat session that names none.
DEFAULT_ROOM = "lobby"
MAX_ROOM_LENGTH = 64
MAX_CHAT_MESSAGE = 4000
_log = logging.getLogger("fastsockjs.chat")


def room_of(conn: Connection) -> str:
    """The ``room`` query parameter of the session's URL (default ``lobby``)."""
    query = conn.url.partition("?")[2]
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "room":
            value = " ".join(value.split())[:MAX_ROOM_LENGTH]
            return value or DEFAULT_ROOM
    return DEFAULT_ROOM


def chat(broker: Broker | None = None, **options: Any) -> Server:
    """A chat with rooms: ``?room=name`` on the SockJS URL (default ``lobby``).

    The client sends plain text; the server sends JSON objects::

        {"type": "hello", "worker": "w0", "room": "lobby", "transport": "...", "you": "ab12cd34"}
        {"type": "message", "room": "lobby", "text": "...", "from": "ab12cd34", "worker": "w1"}

    The hello comes once the room is subscribed in the broker's backend (so
    messages published by other processes from then on arrive); ``worker`` is
    the process that served the session (hello) or received the text (message).
    """
    server = Server(**options)
    hub = broker if broker is not None else MemoryBroker()
    worker = worker_id()

    @server.on("connection")
    def _open(conn: Connection) -> Any:
        room = room_of(conn)
        channel = "chat:" + room
        me = conn.id[:8]
        hub.subscribe(conn, channel)
        _log.info("session %s open (%s) in room %r", me, conn.protocol, room)
        conn.on("close", lambda: _log.info("session %s closed", me))

        def said(text: Any) -> None:
            if not isinstance(text, str):
                text = str(text)
            if not text or len(text) > MAX_CHAT_MESSAGE:
                return
            hub.publish(channel, _json(
                {"type": "message", "room": room, "text": text, "from": me, "worker": worker}
            ))

        conn.on("data", said)

        async def hello() -> None:
            await hub.ready(channel, timeout=2.0)
            conn.write(_json({
                "type": "hello", "worker": worker, "room": room,
                "transport": conn.protocol, "you": me,
            }))

        return hello()

    return server


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
