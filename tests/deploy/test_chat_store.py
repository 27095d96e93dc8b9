"""The chat's Redis store against a real redis-server: two stores stand for two
workers. Names are unique across them, leases end a dead worker's people, history is
capped and shared, and an unreachable Redis gives fallbacks instead of errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastsockjs.chat.store import RedisChatStore
from tests.deploy.cluster import RedisServer, free_port

NOW = 1_700_000_000.0


def with_stores(redis: RedisServer, test: Callable[..., Awaitable[Any]], n: int = 2,
                **kwargs: Any) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"  # rooms of one test only

    async def main() -> None:
        stores = [RedisChatStore(redis.url, key_prefix=prefix, **kwargs) for _ in range(n)]
        try:
            await test(*stores)
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())


def test_names_are_unique_across_workers(redis: RedisServer) -> None:
    async def test(w0: RedisChatStore, w1: RedisChatStore) -> None:
        assert await w0.claim("r", "ann", "c1", NOW) == "ann"
        assert await w1.claim("r", "Ann", "c2", NOW) == "Ann-2"
        assert await w1.claim("r", "ann", "c3", NOW) == "ann-3"
        assert await w0.people("r", NOW) == ["ann", "Ann-2", "ann-3"]
        await w1.release("r", "ann", "c2")  # not c2's name: kept
        await w1.release("r", "Ann-2", "c2")
        assert await w0.people("r", NOW) == ["ann", "ann-3"]
        # A page reconnecting (same client id) takes its name back from its old session.
        assert await w0.claim("r", "bob", "old", NOW, client="tab-12345678") == "bob"
        assert await w1.claim("r", "bob", "new", NOW, client="tab-12345678") == "bob"
        await w0.release("r", "bob", "old")  # the old session's farewell frees nothing
        assert "bob" in (await w1.people("r", NOW) or [])
        assert w0.healthy and w1.healthy

    with_stores(redis, test)


def test_a_dead_workers_people_disappear_when_their_leases_end(redis: RedisServer) -> None:
    async def test(w0: RedisChatStore, w1: RedisChatStore) -> None:
        assert await w0.claim("r", "ann", "c1", NOW) == "ann"
        assert await w1.claim("r", "bob", "c2", NOW) == "bob"
        # w0 keeps renewing ann's lease; w1 died and renews nothing.
        for t in (4.0, 8.0, 12.0):
            await w0.refresh("r", [("ann", "c1", "")], NOW + t)
        assert await w0.people("r", NOW + 9.0) == ["ann", "bob"]
        assert await w0.people("r", NOW + 11.0) == ["ann"]
        # bob's name is free again for someone else.
        assert await w0.claim("r", "bob", "c3", NOW + 11.0) == "bob"

    with_stores(redis, test, lease=10.0)


def test_history_is_shared_and_capped(redis: RedisServer) -> None:
    async def test(w0: RedisChatStore, w1: RedisChatStore) -> None:
        for i in range(30):
            (w0 if i % 2 else w1).append("r", {"id": f"m{i}", "text": str(i)})
            await asyncio.sleep(0)
        # History read at once includes what is still on its way to Redis.
        got = await w0.history("r")
        assert len(got) <= 10
        for _ in range(100):
            if not w0.status()["pending"] and not w1.status()["pending"]:
                break
            await asyncio.sleep(0.02)
        got = await w1.history("r")
        assert len(got) == 10
        assert {m["id"] for m in got} <= {f"m{i}" for i in range(30)}
        assert await w0.history("elsewhere") == []

    with_stores(redis, test, history_length=10)


def test_unreachable_redis_gives_fallbacks_not_errors() -> None:
    async def main() -> None:
        store = RedisChatStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
        try:
            assert await store.claim("r", "ann", "c1", NOW) == "ann"
            assert await store.people("r", NOW) is None
            await store.release("r", "ann", "c1")
            store.append("r", {"id": "x", "text": "kept locally meanwhile"})
            assert [m["id"] for m in await store.history("r")] == ["x"]
            assert not store.healthy and store.failures >= 3
        finally:
            await store.close()

    asyncio.run(main())
