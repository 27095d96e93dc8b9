"""Broker logic without a network: membership, fan-out encoding each frame once,
auto-unsubscribe on close, and the Redis backend's envelope and origin
de-duplication (its link is exercised against a real redis-server in tests/deploy)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import time
from typing import Any

import pytest

from fastsockjs import frames
from fastsockjs.broker import MemoryBroker, make_broker
from fastsockjs.broker.base import Broker
from fastsockjs.connection import Connection
from fastsockjs.protocol.session import ReadyState
from tests.helpers import CI

HAVE_REDIS = importlib.util.find_spec("redis") is not None
# Under CI=true these run anyway, and fail on the import: the test extra installs redis-py.
needs_redis_py = pytest.mark.skipif(not HAVE_REDIS and not CI, reason="redis-py is not installed")


class FakeSession:
    """What the broker touches of a SockJS session: state and quoted writes."""

    def __init__(self, state: ReadyState = ReadyState.OPEN) -> None:
        self.state = state
        self.quoted: list[str] = []
        self.plain: list[str] = []

    def send_quoted(self, quoted: str) -> bool:
        if self.state is not ReadyState.OPEN:
            return False
        self.quoted.append(quoted)
        return True

    def send(self, message: str) -> bool:
        raise AssertionError("SockJS sessions get the quoted frame")

    def write_quoted(self, quoted: str, text: str) -> bool:
        return self.send_quoted(quoted)


class FakeRawSession:
    """A raw WebSocket session: plain text."""

    def __init__(self) -> None:
        self.state = ReadyState.OPEN
        self.plain: list[str] = []

    def send(self, message: str) -> bool:
        self.plain.append(message)
        return True

    def write_quoted(self, quoted: str, text: str) -> bool:
        return self.send(text)  # raw sessions send the plain text


class FakeConn(Connection):
    """A Connection that keeps its fake session at hand (``fake``), so tests read
    what the session recorded without the Connection's internals."""

    __slots__ = ("fake",)

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.fake = session


def conn(session: Any = None) -> FakeConn:
    return FakeConn(session if session is not None else FakeSession())


def close(c: FakeConn) -> None:
    c.fake.state = ReadyState.CLOSED
    c.emit("close")
    c.remove_all_listeners()


def test_publish_reaches_subscribers_of_the_channel_only() -> None:
    broker = MemoryBroker()
    a, b, c = conn(), conn(), conn()
    assert broker.subscribe(a, "room1")
    assert broker.subscribe(b, "room1", "room2")
    assert broker.subscribe(c, "room2")
    assert broker.publish("room1", "hi") == 2
    assert a.fake.quoted == [frames.quote("hi")]
    assert b.fake.quoted == [frames.quote("hi")]
    assert c.fake.quoted == []
    assert broker.publish("nobody", "x") == 0
    assert broker.channels() == {"room1", "room2"}
    assert broker.channels(b) == {"room1", "room2"}
    assert set(broker.members("room2")) == {b, c}


def test_each_frame_is_quoted_once_per_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = frames.quote

    def counting(message: str) -> str:
        calls.append(message)
        return real(message)

    monkeypatch.setattr(frames, "quote", counting)
    broker = MemoryBroker()
    conns = [conn() for _ in range(50)]
    for c in conns:
        broker.subscribe(c, "r")
    message = 'ąść "quoted" \u2028 \ud800'
    assert broker.publish("r", message) == 50
    assert calls == [message]
    # The very same string object went to every session.
    firsts = {id(c.fake.quoted[0]) for c in conns}
    assert len(firsts) == 1


def test_raw_websocket_sessions_get_plain_text() -> None:
    broker = MemoryBroker()
    raw = conn(FakeRawSession())
    sockjs = conn()
    broker.subscribe(raw, "r")
    broker.subscribe(sockjs, "r")
    assert broker.publish("r", "hello") == 2
    assert raw.fake.plain == ["hello"]
    assert sockjs.fake.quoted == [frames.quote("hello")]


def test_non_strings_are_sent_as_json() -> None:
    broker = MemoryBroker()
    c = conn()
    broker.subscribe(c, "r")
    broker.publish("r", {"a": [1, 2]})
    assert c.fake.quoted == [frames.quote('{"a":[1,2]}')]


def test_order_is_kept() -> None:
    broker = MemoryBroker()
    c = conn()
    broker.subscribe(c, "r")
    for i in range(100):
        broker.publish("r", str(i))
    assert c.fake.quoted == [frames.quote(str(i)) for i in range(100)]


def test_unsubscribe_one_channel_and_all() -> None:
    broker = MemoryBroker()
    c = conn()
    broker.subscribe(c, "a", "b", "c")
    broker.unsubscribe(c, "b")
    assert broker.channels(c) == {"a", "c"}
    broker.publish("b", "x")
    assert c.fake.quoted == []
    broker.unsubscribe(c, "nope")  # not subscribed: nothing happens
    broker.unsubscribe(c)
    assert broker.channels(c) == set()
    assert broker.channels() == set()
    assert c.listeners("close") == []  # its close hook went with it
    broker.publish("a", "x")
    assert c.fake.quoted == []
    broker.unsubscribe(c)  # twice is fine


def test_subscribing_twice_is_one_membership() -> None:
    broker = MemoryBroker()
    c = conn()
    broker.subscribe(c, "a")
    broker.subscribe(c, "a", "a")
    assert broker.publish("a", "x") == 1
    assert len(c.listeners("close")) == 1


def test_close_unsubscribes_from_everything() -> None:
    broker = MemoryBroker()
    c, other = conn(), conn()
    broker.subscribe(c, "a", "b")
    broker.subscribe(other, "a")
    close(c)
    assert broker.channels(c) == set()
    assert broker.members("a") == [other]
    assert broker.channels() == {"a"}
    assert broker.publish("b", "x") == 0
    assert broker.status()["connections"] == 1


def test_closed_connections_are_refused() -> None:
    broker = MemoryBroker()
    c = conn(FakeSession(ReadyState.CLOSED))
    refused = broker.subscribe(c, "a")
    assert not refused and refused == False  # noqa: E712 - compatible with the old bool
    assert broker.channels() == set()
    assert asyncio.run(_awaited(refused)) is False


async def _awaited(aw: Any) -> Any:
    return await aw


def test_a_session_closing_during_fan_out_is_safe() -> None:
    """A write that closes a slow session unsubscribes it mid-publish."""
    broker = MemoryBroker()

    class Closing(FakeSession):
        def send_quoted(self, quoted: str) -> bool:
            close(holder[0])
            return False

    holder = [conn(Closing())]
    others = [conn() for _ in range(3)]
    broker.subscribe(holder[0], "r")
    for c in others:
        broker.subscribe(c, "r")
    assert broker.publish("r", "x") == 3
    assert broker.members("r") == others


def test_bad_channels_are_refused() -> None:
    broker = MemoryBroker()
    with pytest.raises(ValueError):
        broker.subscribe(conn(), "")
    with pytest.raises(ValueError):
        broker.publish(None, "x")  # type: ignore[arg-type]


def test_backend_hooks_see_first_and_last_member() -> None:
    events: list[tuple[str, str]] = []

    class Recording(Broker):
        def _channel_added(self, channel: str) -> None:
            events.append(("+", channel))

        def _channel_removed(self, channel: str) -> None:
            events.append(("-", channel))

        def _forward(self, channel: str, message: str) -> None:
            events.append((">", message))

    broker = Recording()
    a, b = conn(), conn()
    broker.subscribe(a, "r")
    broker.subscribe(b, "r")
    broker.publish("r", "m")
    broker.unsubscribe(a)
    close(b)
    assert events == [("+", "r"), (">", "m"), ("-", "r")]


def test_make_broker() -> None:
    assert isinstance(make_broker(None), MemoryBroker)
    assert isinstance(make_broker("memory://"), MemoryBroker)
    with pytest.raises(ValueError):
        make_broker("kafka://x")


def test_memory_broker_lifecycle() -> None:
    async def main() -> None:
        async with MemoryBroker() as broker:
            assert broker.connected
            assert await broker.ready("x")
            # Awaiting subscribe() is optional and, in memory, immediate.
            c = conn()
            assert await broker.subscribe(c, "x") is True
            assert broker.publish("x", "m") == 1
            assert broker.healthy and broker.health.ok and broker.health.reason
            assert broker.status()["healthy"] is True

    asyncio.run(main())


# -- the Redis backend's logic, without Redis ---------------------------------------------
@needs_redis_py
def test_redis_envelope_round_trip_and_origin() -> None:
    from fastsockjs.broker.redis_pubsub import RedisBroker

    broker = RedisBroker("redis://127.0.0.1:1/0")
    for text in ["", "plain", "ąść €", "\ud800 lone surrogate", "a:b\n", "x" * 100000]:
        payload = broker.encode(text)
        assert payload.startswith(broker.origin.encode() + b":")
        origin, back = broker.decode(payload)
        assert origin == broker.origin.encode()
        assert back == text
    # Anything else (e.g. redis-cli PUBLISH) is the message itself.
    assert broker.decode(b"hello") == (None, "hello")
    assert broker.decode(b"Z" * 32 + b":x") == (None, "Z" * 32 + ":x")
    assert broker.decode(b"\xff\xfe") == (None, "\ufffd\ufffd")


@needs_redis_py
def test_redis_skips_its_own_messages_and_delivers_others() -> None:
    from fastsockjs.broker.redis_pubsub import RedisBroker

    mine = RedisBroker("redis://127.0.0.1:1/0", channel_prefix="p:")
    theirs = RedisBroker("redis://127.0.0.1:1/0", channel_prefix="p:")
    assert mine.origin != theirs.origin
    c = conn()
    mine.subscribe(c, "room")
    # Published here: delivered locally once, at publish time (no loop: not forwarded).
    assert mine.publish("room", "local") == 1
    assert mine.dropped == 1
    # Redis hands it back: skipped.
    assert mine.on_redis_message(b"p:room", mine.encode("local")) == 0
    assert mine.skipped_own == 1
    # From another process: delivered.
    assert mine.on_redis_message(b"p:room", theirs.encode("remote")) == 1
    # Raw payloads too; other prefixes and unknown channels are ignored.
    assert mine.on_redis_message(b"p:room", b"raw") == 1
    assert mine.on_redis_message(b"q:room", theirs.encode("x")) == 0
    assert mine.on_redis_message(b"p:other", theirs.encode("x")) == 0
    assert c.fake.quoted == [frames.quote(m) for m in ("local", "remote", "raw")]
    assert mine.received == 3  # remote, raw, other (no local members)


@needs_redis_py
def test_redis_url_options() -> None:
    from fastsockjs.broker.redis_pubsub import RedisBroker, redact, split_url

    url, ours = split_url("redis://u:secret@h:1/2?max_backoff=0.5&socket_timeout=3&channel_prefix=x:")
    assert ours == {"max_backoff": 0.5, "channel_prefix": "x:"}
    assert url == "redis://u:secret@h:1/2?socket_timeout=3"
    assert "secret" not in redact(url)
    broker = make_broker("redis://127.0.0.1:1/0?max_backoff=0.5")
    assert isinstance(broker, RedisBroker)
    assert broker.max_backoff == 0.5


@needs_redis_py
def test_redis_unreachable_keeps_local_delivery_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens on the port: local delivery works, the link retries (bounded
    backoff), ready() says False, and close() ends the loop."""
    import socket

    from fastsockjs.broker.redis_pubsub import RedisBroker

    with socket.socket() as s:  # a port with nobody behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        broker = RedisBroker(f"redis://127.0.0.1:{port}/0", min_backoff=0.01, max_backoff=0.05)
        await broker.start()
        c = conn()
        broker.subscribe(c, "r")
        assert broker.publish("r", "still here") == 1
        assert not await broker.ready("r", timeout=0.1)
        assert not await broker.wait_connected(0.3)
        await broker.close()
        assert c.fake.quoted == [frames.quote("still here")]
        assert broker.dropped == 1
        assert broker.connected is False

    with caplog.at_level("INFO", logger="fastsockjs.broker"):
        asyncio.run(asyncio.wait_for(main(), 10))
    attempts = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert len(attempts) >= 2
    # The delay starts at min_backoff, doubles, and stays at max_backoff.
    delays = [float(re.search(r"next in ([0-9.]+) s", r.getMessage()).group(1))  # type: ignore[union-attr]
              for r in attempts]
    expected = [min(0.01 * 2**i, 0.05) for i in range(len(delays))]
    assert delays == pytest.approx(expected, abs=0.005), delays


# -- the Redis link's bounded waits (no Redis needed) ---------------------------------------
async def _absorbing(release: asyncio.Event, cancels: list[int]) -> str:
    """Absorbs every cancellation until released, as a buggy client library might."""
    while True:
        try:
            await release.wait()
            return "released"
        except asyncio.CancelledError:
            cancels.append(1)


def test_a_cancelled_wait_ends_even_if_the_operation_absorbs_the_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reported hang: a task cancelled inside redis-py's pipe.execute() went on
    waiting, and the link's teardown waited for it forever. Bounded.within stops
    waiting when cancelled; the stubborn operation is abandoned after its grace."""
    import logging

    from fastsockjs.broker.bounded import Bounded
    from fastsockjs.broker.watch import LoopLag

    async def main() -> None:
        loop = asyncio.get_running_loop()
        bounded = Bounded(logging.getLogger("fastsockjs.broker"), LoopLag(0.05, loop.time()))
        release = asyncio.Event()
        cancels: list[int] = []
        writer = asyncio.ensure_future(
            bounded.within(_absorbing(release, cancels), "PUBLISH", limit=5.0, grace=0.1)
        )
        await asyncio.sleep(0.01)
        writer.cancel()
        done, _ = await asyncio.wait({writer}, timeout=5)
        assert done and writer.cancelled()  # the caller stopped
        assert cancels and bounded.abandoned == 1 and bounded.stragglers == 1
        release.set()  # let the straggler end, so the loop closes clean
        for _ in range(100):
            if not bounded.stragglers:
                break
            await asyncio.sleep(0.01)
        assert bounded.stragglers == 0

    with caplog.at_level("WARNING", logger="fastsockjs.broker"):
        asyncio.run(asyncio.wait_for(main(), 10))
    assert "PUBLISH did not stop within 0.1 s of being cancelled; abandoned" in caplog.text


def test_an_operation_outliving_its_timeout_fails_but_a_stall_does_not_count() -> None:
    import logging

    from fastsockjs.broker.bounded import Bounded, tick
    from fastsockjs.broker.watch import LoopLag

    async def main() -> None:
        loop = asyncio.get_running_loop()
        log = logging.getLogger("fastsockjs.broker")
        lag = LoopLag(0.02, loop.time())
        bounded = Bounded(log, lag)
        ticker = asyncio.ensure_future(tick(lag, log))  # measures the loop's lag
        # Nothing answers: TimeoutError after the limit.
        with pytest.raises(TimeoutError, match=r"no answer from Redis to PING within 0\.2 s"):
            await bounded.within(asyncio.Event().wait(), "PING", limit=0.2, grace=0.05)
        # The answer is there right after this process was stalled for longer than the
        # limit (as after SIGSTOP / SIGCONT): the stall is not held against Redis.
        answer: asyncio.Future[str] = loop.create_future()

        def stall_then_answer() -> None:
            time.sleep(0.5)  # the whole loop stops, as if the process were paused
            loop.call_later(0.01, answer.set_result, "PONG")  # after the expired timers

        loop.call_later(0.05, stall_then_answer)
        assert await bounded.within(answer, "PING", limit=0.2, grace=0.05) == "PONG"
        assert lag.worst >= 0.4
        ticker.cancel()

    asyncio.run(asyncio.wait_for(main(), 10))
