"""The chat behind ``fastsockjs chat``: nicknames, rooms, presence, history and limits.

``rules`` (no I/O: names, limits, the JSON messages), ``store`` (presence and history:
in memory, or in Redis for several workers), ``service`` (sessions over a broker).
The wire protocol is documented in docs/chat.md.
"""

from __future__ import annotations

from fastsockjs.broker import Broker
from fastsockjs.chat.rules import DEFAULT_ROOM, HISTORY_LENGTH
from fastsockjs.chat.service import ChatService
from fastsockjs.chat.store import ChatStore, MemoryChatStore, RedisChatStore


def store_for(broker: Broker, history_length: int = HISTORY_LENGTH) -> ChatStore:
    """The store that matches the broker: Redis (the broker's server and key prefix)
    for the Redis broker, this process's memory otherwise."""
    if broker.backend == "redis":
        url: str = broker.url  # type: ignore[attr-defined]
        prefix: str = getattr(broker, "channel_prefix", "fastsockjs:")
        return RedisChatStore(url, key_prefix=prefix + "chat:", history_length=history_length)
    return MemoryChatStore(history_length)


__all__ = [
    "DEFAULT_ROOM",
    "ChatService",
    "ChatStore",
    "MemoryChatStore",
    "RedisChatStore",
    "store_for",
]
