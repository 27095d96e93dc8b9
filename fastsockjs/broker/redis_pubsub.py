"""Redis pub/sub backend (``redis.asyncio``): fan-out across processes and hosts.

Delivery semantics
------------------
* Local subscribers get a message at publish time, whether Redis is up or not.
* Each message is published to Redis with this process's origin id in front;
  when Redis hands it back to this process it is skipped, so local
  subscribers never see it twice.
* Order per publisher is kept: one writer task sends the queue in order over
  one connection (pipelined), and Redis delivers each connection's messages
  in order.
* Redis pub/sub is **at-most-once**: nothing is stored. Messages published
  while Redis is unreachable (or in flight when the link breaks) reach local
  subscribers only; subscribers in other processes miss them. Nothing is
  replayed later, so nothing is duplicated either.

The backend owns its connection: a supervisor task (re)connects with bounded
exponential backoff (with jitter), resubscribes every channel that has local
subscribers, and logs through ``logging.getLogger("fastsockjs.broker")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastsockjs.broker.base import Broker, _running_loop

_ORIGIN_RE = re.compile(rb"[0-9a-f]{32}")
_SEP = b":"
#: Query parameters of a broker URL that are ours, not redis-py's.
OWN_PARAMS = {
    "channel_prefix": str,
    "min_backoff": float,
    "max_backoff": float,
    "max_pending": int,
}


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """(the URL for redis-py, our own options from its query string)."""
    parts = urlsplit(url)
    ours: dict[str, Any] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in OWN_PARAMS:
            ours[key] = OWN_PARAMS[key](value)
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class RedisBroker(Broker):
    """Fan-out through Redis pub/sub; see the module docstring for semantics."""

    backend = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        channel_prefix: str = "fastsockjs:",
        min_backoff: float = 0.1,
        max_backoff: float = 2.0,
        max_pending: int = 10_000,
        poll_interval: float = 0.1,
        health_interval: float = 5.0,
        connect_timeout: float = 3.0,
        **redis_kwargs: Any,
    ) -> None:
        super().__init__()
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "the Redis broker needs redis-py: pip install 'fastsockjs[redis]'"
            ) from exc
        url, ours = split_url(url)
        channel_prefix = ours.get("channel_prefix", channel_prefix)
        min_backoff = ours.get("min_backoff", min_backoff)
        max_backoff = ours.get("max_backoff", max_backoff)
        max_pending = ours.get("max_pending", max_pending)
        if not 0 < min_backoff <= max_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        self.url = url
        self.channel_prefix = channel_prefix
        self.min_backoff = float(min_backoff)
        self.max_backoff = float(max_backoff)
        self.max_pending = int(max_pending)
        self.poll_interval = poll_interval
        self.health_interval = health_interval
        self.connect_timeout = connect_timeout
        self.redis_kwargs = redis_kwargs
        self._origin_b = self.origin.encode("ascii")
        self._ctl_key = f"{channel_prefix}__ctl__:{self.origin}".encode()
        # Outgoing (redis channel, payload), sent in order by one writer.
        self._out: deque[tuple[bytes, bytes]] = deque()
        self._wake: asyncio.Event | None = None
        # Channels SUBSCRIBEd on the current link, and those Redis confirmed.
        self._at_redis: set[str] = set()
        self._pending_sub: dict[str, int] = {}
        self._confirmed: set[str] = set()
        self._dirty = False
        self._waiters: list[tuple[set[str], asyncio.Future[bool]]] = []
        self._link_up = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._drop_logged = 0.0
        # Counters (status()).
        self.forwarded = 0
        self.received = 0
        self.skipped_own = 0
        self.dropped = 0
        self.connects = 0

    # -- names ---------------------------------------------------------------------
    def _key(self, channel: str) -> bytes:
        return (self.channel_prefix + channel).encode("utf-8", "surrogatepass")

    def _channel_of(self, key: bytes) -> str | None:
        name = key.decode("utf-8", "surrogatepass")
        if not name.startswith(self.channel_prefix):
            return None
        return name[len(self.channel_prefix) :]

    def encode(self, message: str) -> bytes:
        """The Redis payload: ``<origin>:<utf-8 text>``."""
        return self._origin_b + _SEP + message.encode("utf-8", "surrogatepass")

    def decode(self, payload: bytes) -> tuple[bytes | None, str]:
        """(origin or None, text) of a payload; a payload of any other shape
        (e.g. from ``redis-cli PUBLISH``) is the message itself."""
        origin: bytes | None = None
        body = payload
        if payload[32:33] == _SEP and _ORIGIN_RE.fullmatch(payload[:32]):
            origin, body = payload[:32], payload[33:]
        try:
            text = body.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = body.decode("utf-8", "replace")
        return origin, text

    # -- Broker hooks --------------------------------------------------------------
    def _channel_added(self, channel: str) -> None:
        self._dirty = True
        self._autostart()

    def _channel_removed(self, channel: str) -> None:
        self._dirty = True

    def _forward(self, channel: str, message: str) -> None:
        self._autostart()
        if not self._link_up:
            self._drop(1, "Redis is not connected")
            return
        if len(self._out) >= self.max_pending:
            self._drop(1, f"more than {self.max_pending} messages wait for Redis")
            return
        self._out.append((self._key(channel), self.encode(message)))
        if self._wake is not None:
            self._wake.set()

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._drop_logged > 10.0:
            self._drop_logged = now
            self.log.warning(
                "%s: published messages reach local subscribers only "
                "(%d not forwarded so far)", why, self.dropped,
            )

    def on_redis_message(self, key: bytes, payload: bytes) -> int:
        """A message from Redis: deliver it locally unless this process sent it."""
        origin, text = self.decode(payload)
        if origin == self._origin_b:
            self.skipped_own += 1
            return 0
        channel = self._channel_of(key)
        if channel is None:
            return 0
        self.received += 1
        return self.deliver(channel, text)

    # -- lifecycle -------------------------------------------------------------------
    def _autostart(self) -> None:
        if self._task is None and not self._closed and _running_loop() is not None:
            self._start()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._supervise())

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("this broker is closed")
        if self._task is None:
            self._start()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until the link to Redis is up; False after ``timeout``."""
        await self.start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._link_up:
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self, flush_timeout: float = 1.0) -> None:
        """Stop; what is queued gets ``flush_timeout`` seconds to reach Redis."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout
        while self._link_up and self._out and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # pragma: no cover - the supervisor catches everything
                self.log.exception("Redis broker task failed")

    @property
    def connected(self) -> bool:
        return self._link_up

    async def ready(self, *channels: str, timeout: float | None = None) -> bool:
        want = set(channels) if channels else set(self._members)
        if not self._link_up:
            return False
        if want <= self._confirmed:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiter = (want, fut)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_waiters(self, link_lost: bool = False) -> None:
        for want, fut in list(self._waiters):
            if fut.done():
                continue
            if link_lost:
                fut.set_result(False)
            elif want <= self._confirmed:
                fut.set_result(True)

    def status(self) -> dict[str, Any]:
        out = super().status()
        out.update(
            url=redact(self.url),
            subscribed=sorted(self._confirmed),
            pending=len(self._out),
            forwarded=self.forwarded,
            received=self.received,
            skipped_own=self.skipped_own,
            dropped=self.dropped,
            connects=self.connects,
        )
        return out

    # -- the link -------------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = self.min_backoff
        failures = 0
        safe_url = redact(self.url)
        while not self._closed:
            started = time.monotonic()
            connects_before = self.connects
            error: BaseException | None = None
            try:
                await self._link()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
            was_up = self.connects > connects_before
            if self._closed:
                break
            if was_up:
                failures = 0
                delay = self.min_backoff
                self.log.warning(
                    "lost Redis at %s after %.1f s (%s); local delivery continues, "
                    "reconnecting", safe_url, time.monotonic() - started, _describe(error),
                )
            else:
                failures += 1
                log = self.log.warning if failures == 1 or failures % 10 == 0 else self.log.info
                log(
                    "cannot reach Redis at %s (%s); attempt %d, next in %.2f s",
                    safe_url, _describe(error), failures, delay,
                )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_backoff)

    def _client(self) -> Any:
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs: dict[str, Any] = dict(
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=max(10.0, 2 * self.health_interval),
            socket_keepalive=True,
            health_check_interval=0,
            # This class owns reconnection; redis-py must never resend a PUBLISH.
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        kwargs.update(self.redis_kwargs)
        return Redis.from_url(self.url, **kwargs)

    async def _link(self) -> None:
        """One link's life (a publishing and a subscribed connection); raises
        when it breaks. ``self.connects`` grows once it is up."""
        client = self._client()
        pubsub = client.pubsub()
        tasks: list[asyncio.Future[None]] = []
        try:
            await asyncio.wait_for(client.ping(), self.connect_timeout)
            self._at_redis = set()
            self._pending_sub = {}
            self._confirmed = set()
            self._dirty = False
            wanted = set(self._members)
            await asyncio.wait_for(
                pubsub.subscribe(self._ctl_key, *(self._key(c) for c in wanted)),
                self.connect_timeout,
            )
            self._at_redis = wanted
            for c in wanted:
                self._pending_sub[c] = 1
            tasks = [
                asyncio.ensure_future(self._reader(pubsub)),
                asyncio.ensure_future(self._writer(client)),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise ConnectionError("Redis link ended")
        finally:
            self._link_up = False
            if self._out:
                self._drop(len(self._out), "Redis link lost")
                self._out.clear()
            self._confirmed = set()
            self._wake_waiters(link_lost=True)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for closing in (pubsub.aclose, client.aclose):
                with contextlib.suppress(Exception):  # closing a broken link
                    await asyncio.wait_for(closing(), 2.0)

    async def _sync(self, pubsub: Any) -> None:
        """Bring Redis's subscriptions in line with the local channels."""
        self._dirty = False
        wanted = set(self._members)
        add = wanted - self._at_redis
        remove = self._at_redis - wanted
        if add:
            self._at_redis |= add
            for c in add:
                self._pending_sub[c] = self._pending_sub.get(c, 0) + 1
            await pubsub.subscribe(*(self._key(c) for c in add))
        if remove:
            self._at_redis -= remove
            self._confirmed -= remove
            await pubsub.unsubscribe(*(self._key(c) for c in remove))

    async def _reader(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        pinged = False
        while True:
            if self._dirty:
                await self._sync(pubsub)
            msg = await pubsub.get_message(timeout=self.poll_interval)
            now = loop.time()
            if msg is None:
                silent = now - last_seen
                if silent > 3 * self.health_interval:
                    raise ConnectionError(f"no answer from Redis for {silent:.0f} s")
                if silent > self.health_interval and not pinged:
                    pinged = True
                    await pubsub.ping()
                continue
            last_seen = now
            pinged = False
            kind = msg["type"]
            if isinstance(kind, bytes):
                kind = kind.decode()
            if kind == "message":
                self.on_redis_message(msg["channel"], msg["data"])
            elif kind == "subscribe":
                self._confirm(msg["channel"])

    def _confirm(self, key: bytes) -> None:
        if key == self._ctl_key:
            self._link_up = True
            self.connects += 1
            self.log.info(
                "%s Redis at %s; subscribed to %d channel(s)",
                "connected to" if self.connects == 1 else "reconnected to",
                redact(self.url), len(self._at_redis),
            )
            if self._out and self._wake is not None:
                self._wake.set()
        else:
            channel = self._channel_of(key)
            if channel is None:
                return
            left = self._pending_sub.get(channel, 0) - 1
            if left > 0:
                self._pending_sub[channel] = left
                return
            self._pending_sub.pop(channel, None)
            if channel in self._at_redis:
                self._confirmed.add(channel)
        self._wake_waiters()

    async def _writer(self, client: Any) -> None:
        wake = self._wake
        assert wake is not None
        out = self._out
        while True:
            if not out or not self._link_up:
                wake.clear()
                await wake.wait()
                continue
            batch = [out.popleft() for _ in range(min(len(out), 512))]
            pipe = client.pipeline(transaction=False)
            for key, payload in batch:
                pipe.publish(key, payload)
            try:
                await pipe.execute()
            except BaseException:
                # Maybe sent, maybe not: never resent (at-most-once).
                self._drop(len(batch), "Redis link lost while publishing")
                raise
            self.forwarded += len(batch)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."
