"""Fan-out between connections, and between processes.

::

    from fastsockjs.broker import make_broker

    broker = make_broker("redis://127.0.0.1:6379/0")   # or None: in-memory

    @server.on("connection")
    async def joined(conn):
        conn.on("data", lambda text: broker.publish("lobby", text))
        await broker.subscribe(conn, "lobby")   # left again on close; the await is
                                                # optional: it waits for Redis's OK

``publish`` quotes each message once per process and writes it to every local
subscriber (``write_quoted``), whatever the state of the backend; the Redis
backend also carries it to the other processes (at-most-once, in order per
publisher). ``broker.health`` / ``broker.healthy`` tell, cheaply, whether
messages cross processes right now (for a health check): see
:mod:`fastsockjs.broker.base` and :mod:`fastsockjs.broker.redis_pubsub`, and
``docs/scaling.md``.
"""

from __future__ import annotations

from typing import Any

from fastsockjs.broker.base import Broker, Health, MemoryBroker, Subscribed


def make_broker(url: str | None = None, **kwargs: Any) -> Broker:
    """A broker from a URL: ``None``, ``""``, ``memory`` or ``memory://`` give the
    in-memory broker; ``redis://``, ``rediss://`` or ``unix://`` the Redis one."""
    if not url or url in ("memory", "memory://"):
        return MemoryBroker()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        from fastsockjs.broker.redis_pubsub import RedisBroker

        return RedisBroker(url, **kwargs)
    raise ValueError(f"unknown broker {url!r}: use memory:// or redis://host:port/db")


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":
        from fastsockjs.broker.redis_pubsub import RedisBroker

        return RedisBroker
    raise AttributeError(name)


__all__ = [
    "Broker",
    "Health",
    "MemoryBroker",
    "Subscribed",
    "RedisBroker",
    "make_broker",
]
