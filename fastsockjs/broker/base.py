"""The broker interface: rooms (channels) of connections, and fan-out.

A :class:`Broker` keeps, for this process, which connections are subscribed to
which channels. ``publish(channel, message)`` writes the message to every
local subscriber at once, encoding its SockJS frame a single time, and hands
it to the backend (if any) for the other processes. Backends only add the
transport between processes; local delivery never depends on them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastsockjs import frames
from fastsockjs.connection import _as_text
from fastsockjs.protocol.session import ReadyState

if TYPE_CHECKING:
    from fastsockjs.connection import Connection

log = logging.getLogger("fastsockjs.broker")


class Broker:
    """Channel membership and local fan-out; subclasses add a backend.

    ``subscribe(conn, *channels)`` / ``unsubscribe(conn, *channels)`` (no
    channels: all of them; also automatic when the connection closes);
    ``publish(channel, message)`` returns how many local sessions took it.
    """

    #: Backend name for status output.
    backend = "base"

    def __init__(self) -> None:
        #: Identifies this process's messages in a shared backend.
        self.origin: str = uuid.uuid4().hex
        self._members: dict[str, dict[Connection, None]] = {}
        self._subs: dict[Connection, tuple[set[str], Callable[[], None]]] = {}
        self.published = 0  # publish() calls
        self.delivered = 0  # local writes accepted
        self.log = log

    # -- membership ------------------------------------------------------------
    def subscribe(self, conn: Connection, *channels: str) -> bool:
        """Add ``conn`` to ``channels``; False if the connection is already closed.

        The connection leaves all its channels by itself when it closes.
        """
        if conn.ready_state not in (ReadyState.CONNECTING, ReadyState.OPEN):
            return False
        entry = self._subs.get(conn)
        if entry is None:

            def on_close() -> None:
                self.unsubscribe(conn)

            conn.on("close", on_close)
            entry = self._subs[conn] = (set(), on_close)
        mine = entry[0]
        for channel in channels:
            _check_channel(channel)
            if channel in mine:
                continue
            mine.add(channel)
            members = self._members.get(channel)
            if members is None:
                members = self._members[channel] = {}
                self._channel_added(channel)
            members[conn] = None
        return True

    def unsubscribe(self, conn: Connection, *channels: str) -> None:
        """Remove ``conn`` from ``channels`` (from every channel when none are given)."""
        entry = self._subs.get(conn)
        if entry is None:
            return
        mine, on_close = entry
        targets = list(mine) if not channels else [c for c in channels if c in mine]
        for channel in targets:
            mine.discard(channel)
            members = self._members.get(channel)
            if members is None:
                continue
            members.pop(conn, None)
            if not members:
                del self._members[channel]
                self._channel_removed(channel)
        if not mine:
            del self._subs[conn]
            conn.off("close", on_close)

    def members(self, channel: str) -> list[Connection]:
        """The local connections subscribed to ``channel``."""
        return list(self._members.get(channel, ()))

    def channels(self, conn: Connection | None = None) -> set[str]:
        """Channels with local subscribers, or those ``conn`` is subscribed to."""
        if conn is None:
            return set(self._members)
        entry = self._subs.get(conn)
        return set(entry[0]) if entry is not None else set()

    # -- fan-out -----------------------------------------------------------------
    def publish(self, channel: str, message: Any) -> int:
        """Send ``message`` to every subscriber of ``channel`` in every process.

        Local subscribers get it now (whatever the backend's state); returns how
        many of them took it. A non-string is sent as its JSON text.
        """
        _check_channel(channel)
        if type(message) is not str:
            message = _as_text(message)
        self.published += 1
        sent = self.deliver(channel, message)
        self._forward(channel, message)
        return sent

    def deliver(self, channel: str, message: str) -> int:
        """Write ``message`` to this process's subscribers, quoting it once."""
        members = self._members.get(channel)
        if not members:
            return 0
        quoted = frames.quote(message)
        sent = 0
        # A copy: a write may close a slow session, which unsubscribes it.
        for conn in tuple(members):
            session = conn._session
            send_quoted = getattr(session, "send_quoted", None)
            if send_quoted is not None:
                sent += send_quoted(quoted)
            else:  # raw WebSocket sessions send plain text
                sent += session.send(message)
        self.delivered += sent
        return sent

    # -- backend hooks -------------------------------------------------------------
    def _channel_added(self, channel: str) -> None:
        """The first local subscriber of ``channel`` arrived."""

    def _channel_removed(self, channel: str) -> None:
        """The last local subscriber of ``channel`` left."""

    def _forward(self, channel: str, message: str) -> None:
        """Hand a published message to the other processes."""

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the backend's tasks (idempotent; needs the running loop)."""

    async def close(self) -> None:
        """Stop the backend; local membership is kept."""

    async def ready(self, *channels: str, timeout: float | None = None) -> bool:
        """Wait until messages published by other processes to ``channels`` reach
        this one; False if the backend is not connected or ``timeout`` passes."""
        return True

    @property
    def connected(self) -> bool:
        """Whether messages cross processes right now (always, for one process)."""
        return True

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "connected": self.connected,
            "origin": self.origin,
            "channels": sorted(self._members),
            "connections": len(self._subs),
            "published": self.published,
            "delivered": self.delivered,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} channels={len(self._members)} conns={len(self._subs)}>"


class MemoryBroker(Broker):
    """One process, nothing to install: the default."""

    backend = "memory"


def _check_channel(channel: object) -> None:
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"a channel is a non-empty string, not {channel!r}")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


__all__ = ["Broker", "MemoryBroker"]
