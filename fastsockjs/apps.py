"""The ready-made services behind the command line: echo, close, ticker,
amplify, broadcast, chat (the same set sockjs-node's test server has)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastsockjs.connection import Connection
from fastsockjs.server import Server


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


def broadcast(**options: Any) -> Server:
    """Every message goes to every connected session (the chat)."""
    server = Server(**options)
    members: dict[str, Connection] = {}

    @server.on("connection")
    def _open(conn: Connection) -> None:
        members[conn.id] = conn
        conn.on("close", lambda: members.pop(conn.id, None))
        conn.on("data", lambda message: server.broadcast(message, list(members.values())))

    return server
