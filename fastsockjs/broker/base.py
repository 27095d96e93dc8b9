"""The broker interface: rooms (channels) of connections, and fan-out.

A :class:`Broker` keeps, for this process, which connections are subscribed to
which channels. ``publish(channel, message)`` writes the message to every
local subscriber at once, encoding its SockJS frame a single time, and hands
it to the backend (if any) for the other processes. Backends only add the
transport between processes; local delivery never depends on them.

Health (for a ``/health`` endpoint): ``broker.health`` is a :class:`Health` --
``ok`` and a human ``reason`` -- and ``broker.healthy`` its ``ok``. Both are cheap
(no I/O, no await): they read state the backend keeps up to date. The in-memory
broker is always healthy. A backend is healthy while messages cross processes
right now: for Redis, the link is connected, its subscriptions are in place, and
Redis answered within the answer timeout (see ``fastsockjs.broker.redis_pubsub``).
While it is not, local delivery still works; only other processes are cut off.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from fastsockjs.frames import as_text, fan_out
from fastsockjs.protocol.session import ReadyState


class Subscriber(Protocol):
    """What the broker needs of a subscriber (a :class:`fastsockjs.Connection`
    is one): its state, its ``'close'`` event, and quoted writes."""

    @property
    def ready_state(self) -> ReadyState: ...
    def on(self, event: str, handler: Callable[..., Any]) -> Any: ...
    def off(self, event: str, handler: Callable[..., Any] | None = None) -> Any: ...
    def write_quoted(self, quoted: str, text: str) -> bool: ...

log = logging.getLogger("fastsockjs.broker")


@dataclass(frozen=True)
class Health:
    """Whether a broker carries messages between processes right now, and why not.

    True in a boolean context when ``ok``."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


class Subscribed:
    """What :meth:`Broker.subscribe` returns: true when the connection is a member
    (local delivery starts at once). Awaiting it waits until the backend has
    confirmed the channels, so that messages other processes publish from then on
    arrive; the await gives False when the backend cannot confirm them (not
    connected, or no answer within its timeout). Not awaiting it is fine."""

    __slots__ = ("ok", "_confirm")

    def __init__(self, ok: bool, confirm: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.ok = ok
        self._confirm = confirm

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bool, Subscribed)):
            return self.ok == bool(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return f"<Subscribed {self.ok}>"

    def __await__(self) -> Generator[Any, None, bool]:
        return self._wait().__await__()

    async def _wait(self) -> bool:
        if not self.ok:
            return False
        if self._confirm is None:
            return True
        return await self._confirm()


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
        self._members: dict[str, dict[Subscriber, None]] = {}
        self._subs: dict[Subscriber, tuple[set[str], Callable[[], None]]] = {}
        self.published = 0  # publish() calls
        self.delivered = 0  # local writes accepted
        self.log = log

    # -- membership ------------------------------------------------------------
    def subscribe(self, conn: Subscriber, *channels: str) -> Subscribed:
        """Add ``conn`` to ``channels``; false if the connection is already closed.

        Local delivery starts at once. ``await broker.subscribe(conn, ch)`` also
        waits until the backend confirmed the subscription (see :class:`Subscribed`):
        a message another process publishes after that is never missed. The
        connection leaves all its channels by itself when it closes.
        """
        if conn.ready_state not in (ReadyState.CONNECTING, ReadyState.OPEN):
            return Subscribed(False)
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
        return Subscribed(True, self._confirmation(channels))

    def unsubscribe(self, conn: Subscriber, *channels: str) -> None:
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

    def members(self, channel: str) -> list[Subscriber]:
        """The local connections subscribed to ``channel``."""
        return list(self._members.get(channel, ()))

    def channels(self, conn: Subscriber | None = None) -> set[str]:
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
            message = as_text(message)
        self.published += 1
        sent = self.deliver(channel, message)
        self._forward(channel, message)
        return sent

    def deliver(self, channel: str, message: str) -> int:
        """Write ``message`` to this process's subscribers, quoting it once."""
        members = self._members.get(channel)
        if not members:
            return 0
        # A copy: a write may close a slow session, which unsubscribes it.
        sent = fan_out(message, tuple(members))
        self.delivered += sent
        return sent

    # -- backend hooks -------------------------------------------------------------
    def _confirmation(self, channels: tuple[str, ...]) -> Callable[[], Awaitable[bool]] | None:
        """What awaiting ``subscribe(conn, *channels)`` waits for (None: nothing)."""
        return None

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

    @property
    def health(self) -> Health:
        """Whether the backend works right now, with the reason (cheap: no I/O)."""
        return Health(True, "in-memory: one process, nothing to reach")

    @property
    def healthy(self) -> bool:
        return self.health.ok

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def status(self) -> dict[str, Any]:
        health = self.health
        return {
            "backend": self.backend,
            "connected": self.connected,
            "healthy": health.ok,
            "health": health.reason,
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


__all__ = ["Broker", "Health", "MemoryBroker", "Subscribed"]
