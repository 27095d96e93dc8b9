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
* A new channel is SUBSCRIBEd (a channel without local subscribers left is
  UNSUBSCRIBEd) as soon as it changes, not on a poll. ``await
  broker.subscribe(conn, channel)`` returns once Redis confirmed it.

The link
--------
The backend owns its two connections (one publishing, one subscribed): a
supervisor task (re)connects with bounded exponential backoff (with jitter),
resubscribes every channel that has local subscribers, and logs through
``logging.getLogger("fastsockjs.broker")``.

Liveness is checked by this class, not by socket timeouts: after
``health_interval`` seconds without hearing from Redis on the subscribed
connection it sends PING, and when nothing arrives within ``answer_timeout``
seconds, or a pipelined PUBLISH (or any other command) waits longer than that
for its reply, the link is declared dead and rebuilt. These timeouts count only
the time this process was running: the event loop's lag is measured
(:class:`~fastsockjs.broker.watch.LoopLag`) and a pause of the whole process
(SIGSTOP, a blocked loop) is credited back, so it cannot by itself tear the link
down. Tearing a link down never waits on anything without a bound: tasks that do
not stop within a grace period are abandoned (and logged), and a new link starts.

Health
------
``broker.health`` (see :class:`~fastsockjs.broker.base.Health`) is cheap and
reports, with a reason:

* ok -- the link is connected (its control channel confirmed by Redis) and
  Redis has not left a PING unanswered for ``answer_timeout`` seconds of
  running time;
* not ok -- not started, closed, connecting / reconnecting (with the last
  error and the attempt number), or "no answer from Redis for N s" (the
  moment it is true, even before the link task has run and torn the link down).

Options, as keyword arguments or in the URL's query string (the rest of the
query goes to redis-py): ``channel_prefix``, ``min_backoff``, ``max_backoff``,
``max_pending``, ``health_interval``, ``answer_timeout``, ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastsockjs.broker.base import Broker, Health, _running_loop
from fastsockjs.broker.bounded import Bounded, tick
from fastsockjs.broker.watch import AnswerWatch, LoopLag

_ORIGIN_RE = re.compile(rb"[0-9a-f]{32}")
_SEP = b":"
#: Query parameters of a broker URL that are ours, not redis-py's.
OWN_PARAMS = {
    "channel_prefix": str,
    "min_backoff": float,
    "max_backoff": float,
    "max_pending": int,
    "health_interval": float,
    "answer_timeout": float,
    "connect_timeout": float,
}
#: How long a link's teardown waits for its tasks and connections to stop,
#: before it abandons them and reconnects anyway.
CLEANUP_GRACE = 2.0

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
        poll_interval: float | None = None,
        health_interval: float = 5.0,
        answer_timeout: float = 5.0,
        connect_timeout: float = 3.0,
        **redis_kwargs: Any,
    ) -> None:
        """``health_interval``: seconds of silence before a PING; ``answer_timeout``:
        seconds (of running time) Redis gets to answer a PING or a command;
        ``poll_interval`` is accepted for compatibility and unused (subscriptions
        follow changes at once)."""
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
        health_interval = ours.get("health_interval", health_interval)
        answer_timeout = ours.get("answer_timeout", answer_timeout)
        connect_timeout = ours.get("connect_timeout", connect_timeout)
        if not 0 < min_backoff <= max_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        if min(health_interval, answer_timeout, connect_timeout) <= 0:
            raise ValueError("health_interval, answer_timeout and connect_timeout must be > 0")
        self.url = url
        self.channel_prefix = channel_prefix
        self.min_backoff = float(min_backoff)
        self.max_backoff = float(max_backoff)
        self.max_pending = int(max_pending)
        self.health_interval = float(health_interval)
        self.answer_timeout = float(answer_timeout)
        self.connect_timeout = float(connect_timeout)
        self.cleanup_grace = CLEANUP_GRACE
        self.redis_kwargs = redis_kwargs
        self._origin_b = self.origin.encode("ascii")
        self._ctl_key = f"{channel_prefix}__ctl__:{self.origin}".encode()
        # Outgoing (redis channel, payload), sent in order by one writer.
        self._out: deque[tuple[bytes, bytes]] = deque()
        self._wake: asyncio.Event | None = None
        # Set when the local channels change: the link SUBSCRIBEs at once.
        self._changed: asyncio.Event | None = None
        # Set while the link is up.
        self._up: asyncio.Event | None = None
        # Channels SUBSCRIBEd on the current link, and those Redis confirmed.
        self._at_redis: set[str] = set()
        self._pending_sub: dict[str, int] = {}
        self._confirmed: set[str] = set()
        self._dirty = False
        self._waiters: list[tuple[set[str], asyncio.Future[bool]]] = []
        self._link_up = False
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        self._drop_logged = 0.0
        # The current link's answer watch (the loop's lag is self._bounded.lag).
        self._watch: AnswerWatch | None = None
        self._last_error = ""
        self._failures = 0
        # Bounded waits and teardowns (and the tasks they gave up on).
        self._bounded = Bounded(self.log)
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
        self._subscriptions_changed()
        self._autostart()

    def _channel_removed(self, channel: str) -> None:
        self._subscriptions_changed()

    def _subscriptions_changed(self) -> None:
        self._dirty = True
        if self._changed is not None:
            self._changed.set()

    def _confirmation(self, channels: tuple[str, ...]) -> Callable[[], Awaitable[bool]]:
        return lambda: self._subscribed(channels)

    async def _subscribed(self, channels: tuple[str, ...]) -> bool:
        """What ``await subscribe()`` waits for; bounded in time."""
        up = self._up
        if not self._link_up and up is not None and self._failures == 0 and not self._closed:
            # Connecting (first time, or again after a loss) and nothing failed yet:
            # worth waiting for. During an outage (an attempt failed): False at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(up.wait(), self.connect_timeout + self.answer_timeout)
        # A link that is up answers within answer_timeout, or is torn down.
        return await self.ready(*channels, timeout=self.answer_timeout + 1.0)

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
        self._changed = asyncio.Event()
        self._up = asyncio.Event()
        # Ticks often enough that a stall is measured to a small part of the timeout.
        lag = self._bounded.lag = LoopLag(min(0.25, self.answer_timeout / 8), loop.time())
        self._ticker = loop.create_task(tick(lag, self.log))
        self._task = loop.create_task(self._supervise())

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("this broker is closed")
        if self._task is None:
            self._start()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until the link to Redis is up; False after ``timeout``."""
        await self.start()
        if self._link_up:
            return True
        assert self._up is not None
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return self._link_up

    async def close(self, flush_timeout: float = 1.0) -> None:
        """Stop; what is queued gets ``flush_timeout`` seconds to reach Redis.
        Returns within ``flush_timeout`` plus a few seconds, whatever Redis does."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout
        while self._link_up and self._out and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self._closed = True
        tasks = [t for t in (self._task, self._ticker) if t is not None]
        self._task = self._ticker = None
        for task in tasks:
            task.cancel()
        # The link's own teardown is bounded by CLEANUP_GRACE per step.
        await self._settle(tasks, 3 * self.cleanup_grace + 1.0, "the broker's tasks")

    @property
    def abandoned(self) -> int:
        """Redis calls and link tasks given up on (they ignored their cancellation)."""
        return self._bounded.abandoned

    @property
    def connected(self) -> bool:
        return self._link_up

    @property
    def health(self) -> Health:
        where = redact(self.url)
        if self._closed:
            return Health(False, "the broker is closed")
        if self._task is None:
            return Health(False, "the broker is not started")
        if not self._link_up:
            if self._failures:
                return Health(False, (
                    f"cannot reach Redis at {where} ({self._last_error}; "
                    f"attempt {self._failures})"
                ))
            if self.connects:
                return Health(False, f"reconnecting to Redis at {where} ({self._last_error})")
            return Health(False, f"connecting to Redis at {where}")
        watch, lag = self._watch, self._bounded.lag
        if watch is not None and lag is not None:
            loop = _running_loop()  # its clock; any thread may ask
            now = loop.time() if loop is not None else time.monotonic()
            verdict = watch.check(now, lag)
            if verdict.dead:
                return Health(False, verdict.reason)
        return Health(True, f"connected to Redis at {where}")

    async def ready(self, *channels: str, timeout: float | None = None) -> bool:
        """Wait until Redis confirmed ``channels`` (all local channels when none are
        given) on the current link; False at once when the link is down, or after
        ``timeout``, or when the link breaks meanwhile. Optional: awaiting
        ``subscribe()`` does the same for its channels."""
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
            abandoned=self.abandoned,
            loop_lag_max=round(lag.worst, 3) if (lag := self._bounded.lag) is not None else 0.0,
        )
        return out

    # -- the link -------------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = self.min_backoff
        safe_url = redact(self.url)
        loop = asyncio.get_running_loop()
        while not self._closed:
            started = loop.time()
            connects_before = self.connects
            error: BaseException | None = None
            try:
                await self._link()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
            self._last_error = _describe(error)
            was_up = self.connects > connects_before
            if self._closed:
                break
            if was_up:
                self._failures = 0
                delay = self.min_backoff
                self.log.warning(
                    "lost Redis at %s after %.1f s (%s); local delivery continues, "
                    "reconnecting", safe_url, loop.time() - started, self._last_error,
                )
            else:
                self._failures += 1
                log = (self.log.warning if self._failures == 1 or self._failures % 10 == 0
                       else self.log.info)
                log(
                    "cannot reach Redis at %s (%s); attempt %d, next in %.2f s",
                    safe_url, self._last_error, self._failures, delay,
                )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_backoff)

    def _client(self) -> Any:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        kwargs: dict[str, Any] = dict(
            socket_connect_timeout=self.connect_timeout,
            # No socket timeouts: they count wall time, so they would fire falsely
            # after a pause of this process. _within() bounds every command instead.
            socket_timeout=None,
            socket_keepalive=True,
            health_check_interval=0,
            # This class owns reconnection: redis-py must never resend a PUBLISH,
            # nor reconnect and resubscribe behind its back (no error is "retryable").
            retry=Retry(NoBackoff(), 0, supported_errors=()),
            decode_responses=False,
        )
        kwargs.update(self.redis_kwargs)
        return Redis.from_url(self.url, **kwargs)

    async def _within(self, aw: Awaitable[Any], what: str, timeout: float | None = None) -> Any:
        """Await a Redis call for at most ``timeout`` (default ``answer_timeout``)
        seconds of this process's running time (see :class:`Bounded`)."""
        limit = self.answer_timeout if timeout is None else timeout
        return await self._bounded.within(aw, what, limit, self.cleanup_grace)

    async def _settle(self, tasks: Iterable[asyncio.Future[Any]], grace: float, what: str) -> None:
        await self._bounded.settle(tasks, grace, what)

    async def _link(self) -> None:
        """One link's life (a publishing and a subscribed connection); raises
        when it breaks. ``self.connects`` grows once it is up."""
        loop = asyncio.get_running_loop()
        lag, changed = self._bounded.lag, self._changed
        assert lag is not None and changed is not None
        client = self._client()
        pubsub = client.pubsub()
        stop = asyncio.Event()  # tells this link's tasks to end (cancel may be absorbed)
        tasks: list[asyncio.Future[Any]] = []
        try:
            await self._within(client.ping(), "PING", self.connect_timeout)
            self._at_redis = set()
            self._pending_sub = {}
            self._confirmed = set()
            self._dirty = False
            changed.clear()
            wanted = set(self._members)
            self._watch = watch = AnswerWatch(self.health_interval, self.answer_timeout,
                                              loop.time())
            await self._within(
                pubsub.subscribe(self._ctl_key, *(self._key(c) for c in wanted)),
                "SUBSCRIBE", self.connect_timeout,
            )
            self._at_redis = wanted
            for c in wanted:
                self._pending_sub[c] = 1
            reader = asyncio.ensure_future(self._reader(pubsub, watch, stop))
            writer = asyncio.ensure_future(self._writer(client, stop))
            tasks = [reader, writer]
            while True:
                changes = asyncio.ensure_future(changed.wait())
                tasks.append(changes)
                verdict = watch.check(loop.time(), lag)
                if verdict.dead:
                    raise ConnectionError(verdict.reason)
                done, _ = await asyncio.wait(
                    [reader, writer, changes], timeout=verdict.wait,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in (reader, writer):
                    if task in done:
                        task.result()
                        raise ConnectionError("Redis link ended")
                if self._dirty:
                    changed.clear()
                    await self._within(self._sync(pubsub), "SUBSCRIBE")
                verdict = watch.check(loop.time(), lag)
                if verdict.ping:
                    watch.pinged(loop.time())
                    await self._within(pubsub.ping(), "PING")
                if not changes.done():
                    changes.cancel()
                tasks.remove(changes)
        finally:
            stop.set()
            self._link_up = False
            if self._up is not None:
                self._up.clear()
            self._watch = None
            if self._out:
                self._drop(len(self._out), "Redis link lost")
                self._out.clear()
            self._confirmed = set()
            self._wake_waiters(link_lost=True)
            for pending in tasks:
                pending.cancel()
            await self._settle(tasks, self.cleanup_grace, "a Redis link task")
            for closing in (pubsub.aclose, client.aclose):
                with contextlib.suppress(Exception):  # closing a broken link
                    await self._settle_call(closing, "closing a Redis connection")

    async def _settle_call(self, fn: Callable[[], Awaitable[Any]], what: str) -> None:
        """Run ``fn()`` for up to ``cleanup_grace`` seconds (a teardown step)."""
        task = asyncio.ensure_future(fn())
        done, _ = await asyncio.wait({task}, timeout=self.cleanup_grace)
        if not done:
            task.cancel()
        await self._settle([task], 0.1 if not done else 0.0, what)

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

    async def _reader(self, pubsub: Any, watch: AnswerWatch, stop: asyncio.Event) -> None:
        """Reads the subscribed connection until the link ends; every arrival
        (message, confirmation, pong) counts as Redis answering."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            msg = await pubsub.get_message(timeout=None)
            if stop.is_set():  # a cancel absorbed by redis-py: never deliver late
                return
            watch.heard(loop.time())
            if msg is None:
                continue
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
            if self._up is not None:
                self._up.set()
            self.connects += 1
            self._failures = 0
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

    async def _writer(self, client: Any, stop: asyncio.Event) -> None:
        wake = self._wake
        assert wake is not None
        out = self._out
        while not stop.is_set():
            if not out or not self._link_up:
                wake.clear()
                await wake.wait()
                continue
            batch = [out.popleft() for _ in range(min(len(out), 512))]
            pipe = client.pipeline(transaction=False)
            for key, payload in batch:
                pipe.publish(key, payload)
            try:
                await self._within(pipe.execute(), "PUBLISH")
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
