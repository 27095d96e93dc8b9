"""The deadline heap (fastsockjs/protocol/timers.py, driven by the loop in
fastsockjs/aio/timers.py) and the WebSocket keep-alive timer arithmetic, on a
fake clock: no sockets."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from fastsockjs.aio.websocket import WebSocket
from fastsockjs.engine.runtime import LoopTimerQueue
from fastsockjs.protocol import websocket as wsproto
from fastsockjs.protocol.timers import Deadline, TimerQueue


class Clock:
    """A TimerQueue run by hand: ``advance`` fires what comes due, in order."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t
        self.queue = TimerQueue()

    def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while self.queue.next_at <= end:
            self.t = max(self.t, self.queue.next_at)
            self.queue.run_due(self.t)
        self.t = end


def recorder(clock: Clock) -> tuple[Deadline, list[float]]:
    fired: list[float] = []
    return Deadline(clock.queue, fired.append), fired


def test_a_deadline_fires_once_at_its_time() -> None:
    clock = Clock()
    d, fired = recorder(clock)
    d.set(101.0)
    clock.advance(0.99)
    assert fired == [] and d.pending
    clock.advance(0.02)
    assert fired == [101.0] and not d.pending
    clock.advance(100)
    assert fired == [101.0]


def test_moving_a_deadline_later_pushes_nothing() -> None:
    clock = Clock()
    d, fired = recorder(clock)
    d.set(101.0)
    for i in range(1000):  # what every request and message does
        d.set(101.0 + i * 0.01)
    assert len(clock.queue) == 1
    clock.advance(1.0)  # the old entry comes due and re-queues for the new time
    assert fired == [] and len(clock.queue) == 1
    clock.advance(20.0)
    assert fired == [101.0 + 999 * 0.01]


def test_moving_a_deadline_earlier_discards_the_old_entry() -> None:
    clock = Clock()
    d, fired = recorder(clock)
    d.set(130.0)
    d.set(105.0)
    assert clock.queue.live == 1
    clock.advance(10.0)
    assert fired == [105.0]
    clock.advance(30.0)
    assert fired == [105.0]  # the discarded 130 s entry did nothing


def test_a_cleared_deadline_does_not_fire_and_can_be_set_again() -> None:
    clock = Clock()
    d, fired = recorder(clock)
    d.set(101.0)
    d.clear()
    clock.advance(5.0)
    assert fired == []
    d.set(110.0)
    clock.advance(10.0)
    assert fired == [110.0]


def test_a_closed_deadline_pins_nothing() -> None:
    # Was: a heap entry held its owner (a closed connection with its parser and
    # headers) until the owner's old deadline came, 30 s later.
    clock = Clock()

    class Owner:
        def __init__(self) -> None:
            self.deadline = Deadline(clock.queue, self.on_timer)
            self.payload = bytearray(1 << 20)

        def on_timer(self, now: float) -> None:
            raise AssertionError("closed")

    owner = Owner()
    owner.deadline.set(130.0)
    ref = weakref.ref(owner)
    gc.disable()
    try:
        owner.deadline.close()
        del owner
        assert ref() is None  # reference counting alone: no cycle left
    finally:
        gc.enable()
    clock.advance(60.0)
    owner2 = Owner()
    owner2.deadline.close()
    owner2.deadline.set(200.0)  # after close: ignored
    assert clock.queue.live == 0


def test_discarded_entries_are_compacted() -> None:
    clock = Clock()
    keep = [Deadline(clock.queue, lambda now: None) for _ in range(10)]
    for d in keep:
        d.set(1000.0)
    for _ in range(20):
        churn = [Deadline(clock.queue, lambda now: None) for _ in range(500)]
        for i, d in enumerate(churn):
            d.set(200.0 + i)
        for d in churn:
            d.close()
    # Closed deadlines are never run, yet the heap stays near the live count.
    assert clock.queue.live == 10
    assert len(clock.queue) <= 2 * 10 + 64 + 1, len(clock.queue)


def test_a_run_fires_only_what_was_due_when_it_started() -> None:
    clock = Clock()
    calls: list[float] = []

    def again(now: float) -> None:
        calls.append(now)
        d.set(now)  # due at once: must wait for the next run

    d = Deadline(clock.queue, again)
    d.set(100.0)
    clock.queue.run_due(100.0)
    assert calls == [100.0]
    clock.queue.run_due(100.0)
    assert calls == [100.0, 100.0]


def test_the_time_a_deadline_was_set_for_is_the_time_it_fires() -> None:
    # (1288.291 + 0.3) - 1288.291 < 0.3 in floating point: comparing a difference
    # with the timeout would say "not yet" at the very instant it was set for.
    left, timeout = 1288.291, 0.3
    assert (left + timeout) - left < timeout
    clock = Clock(left)
    d, fired = recorder(clock)
    d.set(left + timeout)
    clock.queue.run_due(left + timeout)
    assert fired == [left + timeout]


def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    fired: list[float] = []

    def boom(now: float) -> None:
        raise RuntimeError("boom")

    Deadline(clock.queue, boom).set(101.0)
    Deadline(clock.queue, fired.append).set(101.0)
    with caplog.at_level(logging.ERROR, "fastsockjs.error"):
        clock.advance(2.0)
    assert fired == [101.0]
    assert "boom" in caplog.text


def test_a_target_rearming_for_now_does_not_hold_the_loop() -> None:
    # Was: entries pushed during a pass at or before its horizon ran in the same
    # pass, so one such target spun the event loop forever.
    loop = asyncio.new_event_loop()
    try:
        queue = LoopTimerQueue(loop)
        calls = 0

        def again(now: float) -> None:
            nonlocal calls
            calls += 1
            if calls < 1000:
                d.set(now)

        d = Deadline(queue, again)
        ticks = 0

        async def count_turns() -> None:
            nonlocal ticks
            for _ in range(20):
                ticks += 1
                await asyncio.sleep(0)

        d.set(loop.time())
        loop.run_until_complete(count_turns())
        assert ticks == 20
        assert calls < 1000  # once per loop turn at most, not all in one pass
        queue.close()
    finally:
        loop.close()


def keepalive(now: float, interval: float, timeout: float) -> tuple[WebSocket, Any]:
    """A WebSocket with keep-alive pings over fakes; the clock is ``fx.clock``, the
    transport's unsent bytes ``fx.buffered[0]``."""
    clock = Clock(now)
    sent: list[bytes] = []
    buffered = [0]
    aborted: list[bool] = []
    transport = SimpleNamespace(
        get_write_buffer_size=lambda: buffered[0], close=lambda: None,
        abort=lambda: aborted.append(True),
    )
    proto = SimpleNamespace(
        loop=SimpleNamespace(time=lambda: clock.t),
        transport=transport,
        listener=SimpleNamespace(timers=clock.queue),
        send=sent.append,
        write_paused=False,
    )
    app = SimpleNamespace(closed=0)
    app.on_closed = lambda: setattr(app, "closed", app.closed + 1)
    ws = WebSocket(proto, clock.queue, wsproto.Codec(1 << 20), app, (interval, timeout))  # type: ignore[arg-type]
    return ws, SimpleNamespace(clock=clock, sent=sent, proto=proto, app=app,
                               buffered=buffered, aborted=aborted)


PING = wsproto.Codec(1).ping(b"fastsockjs")


def test_silent_peer_dropped_exactly_at_the_timeout() -> None:
    ws, fx = keepalive(100.0, 0.2, 0.3)
    fx.clock.advance(0.2)  # the interval is up: the ping leaves now
    assert fx.sent == [PING]
    left = fx.clock.t
    assert fx.clock.queue.next_at == left + 0.3
    fx.clock.advance(0.3)
    assert ws.closed and fx.app.closed == 1
    assert fx.sent[-1] == wsproto.Codec(1).close(1011, "keepalive ping timeout")


def test_a_pong_moves_the_next_ping_and_leaves_one_entry() -> None:
    ws, fx = keepalive(100.0, 1.0, 5.0)
    fx.clock.advance(1.0)  # ping leaves, deadline 106
    assert fx.sent == [PING]
    fx.clock.advance(0.5)
    ws.data_received(_masked_pong())  # next ping at 102.5, earlier than 106
    assert fx.clock.queue.live == 1 and fx.clock.queue.next_at == 102.5
    fx.clock.advance(1.0)
    assert fx.sent == [PING, PING]
    fx.clock.advance(3.9)  # past 106: the superseded deadline does nothing
    assert not ws.closed
    fx.clock.advance(1.2)  # 5 s after the second ping, no pong
    assert ws.closed


def _masked_pong() -> bytes:
    payload = b"fastsockjs"
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x8A, 0x80 | len(payload)]) + mask + body



def test_a_peer_that_stops_reading_is_dropped_while_the_ping_waits() -> None:
    ws, fx = keepalive(100.0, 1.0, 5.0)
    fx.buffered[0] = 4_000_000  # a large send the peer never reads
    closed_at: list[float] = []
    fx.app.on_closed = lambda: closed_at.append(fx.clock.t)
    fx.clock.advance(1.0)  # the ping is queued behind it
    assert fx.sent == [PING]
    for _ in range(20):
        if ws.closed:
            break
        fx.clock.advance(1.0)
    assert ws.closed and fx.aborted == [True]
    assert closed_at == [106.0]  # the timeout after the last byte the kernel took


def test_a_slow_reader_keeps_its_session_while_bytes_leave() -> None:
    ws, fx = keepalive(100.0, 1.0, 5.0)
    fx.buffered[0] = 4_000_000
    fx.clock.advance(1.0)
    for _ in range(38):
        fx.buffered[0] -= 50_000  # slow, but reading
        fx.clock.advance(1.0)
    assert not ws.closed
