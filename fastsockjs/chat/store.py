"""Where a room's presence list and history live.

:class:`MemoryChatStore` keeps them in this process (one worker, or the memory broker).
:class:`RedisChatStore` keeps them in Redis, shared by every worker on the broker's
Redis: per room a hash of the people present (field: the nickname's case-folded key;
value: the display name, the owning connection and a lease deadline) and a capped list
of the last messages. Each worker renews its people's leases while they are connected,
so when a worker dies its people disappear once their leases end; the hash and the list
also expire as a whole when a room is abandoned. It uses its own ``redis.asyncio``
client, apart from the broker's pub/sub link.

Redis being away must never stop the chat: every call is bounded by ``timeout`` and
answers a fallback instead of raising (the requested name, an unknown presence list,
no history), and history is written by one background task in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from fastsockjs.chat import rules

log = logging.getLogger("fastsockjs.chat")
T = TypeVar("T")


class ChatStore:
    """The interface; every nickname is a valid one (:func:`rules.check_nick`)."""

    #: Seen by other processes: presence then needs leases and a periodic resync.
    shared = False
    backend = "base"

    async def claim(self, room: str, nick: str, owner: str, now: float,
                    random_suffix: str = "x", client: str = "") -> str:
        """Register ``owner`` in ``room`` under ``nick``, or the first free name of
        :func:`rules.nick_candidates` when another owner holds it. A name held for the
        same non-empty ``client`` (the page, reconnecting) is taken over."""
        raise NotImplementedError

    async def release(self, room: str, nick: str, owner: str) -> None:
        """Remove ``nick`` from ``room`` if ``owner`` still holds it."""
        raise NotImplementedError

    async def refresh(self, room: str, held: Iterable[tuple[str, str, str]], now: float) -> None:
        """Renew the leases of these (nick, owner, client) (re-adding lost ones)."""

    async def people(self, room: str, now: float) -> list[str] | None:
        """The names present in ``room``, sorted; None when it cannot be known now."""
        raise NotImplementedError

    def append(self, room: str, message: dict[str, Any]) -> None:
        """Add a message to the room's history (kept: the last ``history_length``)."""
        raise NotImplementedError

    async def history(self, room: str) -> list[dict[str, Any]]:
        """The room's last messages, oldest first."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release the store's resources."""

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend}


def _sorted(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: (n.casefold(), n))


class MemoryChatStore(ChatStore):
    """This process only; leases are not needed (a connection releases its name when
    it closes, and the process's people go with it)."""

    backend = "memory"

    def __init__(self, history_length: int = rules.HISTORY_LENGTH) -> None:
        self.history_length = history_length
        # room -> key -> (nick, owner, client)
        self._people: dict[str, dict[str, tuple[str, str, str]]] = {}
        self._history: dict[str, deque[dict[str, Any]]] = {}

    async def claim(self, room: str, nick: str, owner: str, now: float,
                    random_suffix: str = "x", client: str = "") -> str:
        present = self._people.setdefault(room, {})
        for candidate in rules.nick_candidates(nick, random_suffix):
            key = rules.nick_key(candidate)
            holder = present.get(key)
            if holder is None or holder[1] == owner or (client and holder[2] == client):
                present[key] = (candidate, owner, client)
                return candidate
        raise RuntimeError("unreachable: the random suffix is the last candidate")

    async def release(self, room: str, nick: str, owner: str) -> None:
        present = self._people.get(room)
        if present is None:
            return
        key = rules.nick_key(nick)
        holder = present.get(key)
        if holder is not None and holder[1] == owner:
            del present[key]
        if not present:
            del self._people[room]

    async def people(self, room: str, now: float) -> list[str] | None:
        return _sorted(nick for nick, _, _ in self._people.get(room, {}).values())

    def append(self, room: str, message: dict[str, Any]) -> None:
        kept = self._history.get(room)
        if kept is None:
            kept = self._history[room] = deque(maxlen=self.history_length)
        kept.append(message)

    async def history(self, room: str) -> list[dict[str, Any]]:
        return list(self._history.get(room, ()))


# -- Redis ----------------------------------------------------------------------------------
# Presence values are JSON {"nick", "owner", "client", "exp"}; exp is a lease deadline in ms since
# the epoch (the workers' clocks: keep them in sync, as for any lease).
_CLAIM = """
local now, exp, owner, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local client = ARGV[5]
for i = 6, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local free = not cur
  if cur then
    local ok, e = pcall(cjson.decode, cur)
    free = (not ok) or type(e) ~= 'table' or e.owner == owner or (tonumber(e.exp) or 0) <= now
      or (client ~= '' and e.client == client)
  end
  if free then
    local entry = cjson.encode({nick = ARGV[i + 1], owner = owner, client = client, exp = exp})
    redis.call('HSET', KEYS[1], ARGV[i], entry)
    redis.call('EXPIRE', KEYS[1], ttl)
    return ARGV[i + 1]
  end
end
return false
"""
_RELEASE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, e = pcall(cjson.decode, cur)
  if (not ok) or type(e) ~= 'table' or e.owner == ARGV[2] then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end
return 0
"""
_REFRESH = """
local exp, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV, 4 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local mine = not cur
  if cur then
    local ok, e = pcall(cjson.decode, cur)
    mine = ok and type(e) == 'table' and e.owner == ARGV[i + 2]
  end
  if mine then
    local entry = cjson.encode({nick = ARGV[i + 1], owner = ARGV[i + 2], client = ARGV[i + 3],
                                exp = exp})
    redis.call('HSET', KEYS[1], ARGV[i], entry)
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
return 0
"""
_PEOPLE = """
local now, out = tonumber(ARGV[1]), {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, e = pcall(cjson.decode, all[i + 1])
  if ok and type(e) == 'table' and (tonumber(e.exp) or 0) > now then
    out[#out + 1] = e.nick
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
"""


class RedisChatStore(ChatStore):
    """Presence and history in Redis, shared by the workers; see the module docstring."""

    shared = True
    backend = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "fastsockjs:chat:",
        history_length: int = rules.HISTORY_LENGTH,
        lease: float = 15.0,
        room_ttl: float = 7 * 86400.0,
        timeout: float = 2.0,
        max_pending: int = 1000,
        client: Any = None,
    ) -> None:
        if lease <= 0 or timeout <= 0:
            raise ValueError("lease and timeout must be positive")
        self.url = url
        self.key_prefix = key_prefix
        self.history_length = history_length
        self.lease = lease
        self.room_ttl = room_ttl
        self.timeout = timeout
        self.max_pending = max_pending
        self._redis = client if client is not None else self._client()
        self._scripts = {name: self._redis.register_script(lua) for name, lua in (
            ("claim", _CLAIM), ("release", _RELEASE), ("refresh", _REFRESH), ("people", _PEOPLE),
        )}
        self._pending: deque[tuple[str, str]] = deque()  # (room, message JSON), in order
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.healthy = True
        self.failures = 0
        self.dropped = 0

    def _client(self) -> Any:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return Redis.from_url(
            self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),  # a history RPUSH must not be sent twice
        )

    def _key(self, room: str, what: str) -> str:
        # Braces: one hash slot per room under Redis Cluster, and no room name can
        # make another room's key.
        return f"{self.key_prefix}{{{room}}}:{what}"

    def _ttl(self) -> int:
        return max(1, int(self.room_ttl))

    async def _bounded(self, what: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        try:
            result = await asyncio.wait_for(call(), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any Redis or network failure
            self._failed(what, exc)
            return fallback
        if not self.healthy:
            log.warning("chat store: Redis answers again")
            self.healthy = True
        return result

    def _failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        if self.healthy:  # once per outage, not once per call
            log.warning("chat store: Redis %s failed (%s: %s); presence and history are"
                        " local until it answers", what, type(exc).__name__, exc)
            self.healthy = False

    # -- presence ---------------------------------------------------------------------------
    async def claim(self, room: str, nick: str, owner: str, now: float,
                    random_suffix: str = "x", client: str = "") -> str:
        args: list[Any] = [rules.ms(now), rules.ms(now + self.lease), owner, self._ttl(), client]
        for candidate in rules.nick_candidates(nick, random_suffix):
            args += [rules.nick_key(candidate), candidate]
        got = await self._bounded(
            "claim", lambda: self._scripts["claim"](keys=[self._key(room, "people")], args=args),
            None,
        )
        return str(got) if got else nick

    async def release(self, room: str, nick: str, owner: str) -> None:
        await self._bounded(
            "release",
            lambda: self._scripts["release"](
                keys=[self._key(room, "people")], args=[rules.nick_key(nick), owner]),
            None,
        )

    async def refresh(self, room: str, held: Iterable[tuple[str, str, str]], now: float) -> None:
        args: list[Any] = [rules.ms(now + self.lease), self._ttl()]
        for nick, owner, client in held:
            args += [rules.nick_key(nick), nick, owner, client]
        await self._bounded(
            "refresh",
            lambda: self._scripts["refresh"](keys=[self._key(room, "people")], args=args),
            None,
        )

    async def people(self, room: str, now: float) -> list[str] | None:
        got = await self._bounded(
            "people",
            lambda: self._scripts["people"](keys=[self._key(room, "people")],
                                            args=[rules.ms(now)]),
            None,
        )
        return None if got is None else _sorted(str(n) for n in got)

    # -- history ------------------------------------------------------------------------------
    def append(self, room: str, message: dict[str, Any]) -> None:
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append((room, rules.dumps(message)))
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        assert self._wake is not None
        self._wake.set()

    async def _write_loop(self) -> None:
        """One writer, so that each worker's messages reach the list in order."""
        assert self._wake is not None
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = list(self._pending)[:100]

                async def write(batch: list[tuple[str, str]] = batch) -> bool:
                    pipe = self._redis.pipeline(transaction=False)
                    for room, text in batch:
                        pipe.rpush(self._key(room, "history"), text)
                    for room in {room for room, _ in batch}:
                        key = self._key(room, "history")
                        pipe.ltrim(key, -self.history_length, -1)
                        pipe.expire(key, self._ttl())
                    await pipe.execute()
                    return True

                ok = await self._bounded("history write", write, False)
                # Written, or lost with the link (at most once, as the broker's fan-out).
                for item in batch:  # (unless append() dropped them meanwhile)
                    if self._pending and self._pending[0] is item:
                        self._pending.popleft()
                if not ok:
                    self.dropped += len(batch)
                    await asyncio.sleep(min(1.0, self.timeout))

    async def history(self, room: str) -> list[dict[str, Any]]:
        key = self._key(room, "history")
        none: list[str] = []
        stored = await self._bounded(
            "history", lambda: self._redis.lrange(key, -self.history_length, -1), none
        )
        # Messages still on their way to Redis count too.
        texts = [*stored, *(text for r, text in self._pending if r == room)]
        out: list[dict[str, Any]] = []
        seen: set[Any] = set()  # a message being written can be in both
        for text in texts:
            try:
                obj = json.loads(text)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("id") not in seen:
                seen.add(obj.get("id"))
                out.append(obj)
        return out[-self.history_length:]

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            if self._wake is not None:
                self._wake.set()
            # redis-py can swallow a cancellation in the middle of a connect: bounded.
            await asyncio.wait({self._writer}, timeout=2 * self.timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.aclose(), self.timeout)

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend, "healthy": self.healthy, "failures": self.failures,
                "pending": len(self._pending), "dropped": self.dropped}
