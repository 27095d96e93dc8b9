"""The deadline heap (fastsockjs/aio/timers.py) and the WebSocket keep-alive
timer arithmetic, on a fake clock: no sockets."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from fastsockjs.aio.timers import DeadlineScheduler
from fastsockjs.aio.websocket import WebSocket
from fastsockjs.protocol import websocket as wsproto


class Rearmer:
    """A target that asks to be woken again at the very time it was woken."""

    def __init__(self, scheduler: DeadlineScheduler) -> None:
        self.scheduler = scheduler
        self.calls = 0

    def on_timer(self, now: float) -> None:
        self.calls += 1
        if self.calls < 1000:
            self.scheduler.schedule(self, now)


def test_a_target_rearming_for_now_does_not_hold_the_loop() -> None:
    # Was: entries pushed during a pass at or before its horizon ran in the same
    # pass, so one such target spun the event loop forever.
    loop = asyncio.new_event_loop()
    try:
        scheduler = DeadlineScheduler(loop)
        target = Rearmer(scheduler)
        ticks = 0

        async def count_turns() -> None:
            nonlocal ticks
            for _ in range(20):
                ticks += 1
                await asyncio.sleep(0)

        scheduler.schedule(target, loop.time())
        loop.run_until_complete(count_turns())
        assert ticks == 20
        assert target.calls < 1000  # once per loop turn at most, not all in one pass
        scheduler.close()
    finally:
        loop.close()


class FakeScheduler:
    def __init__(self) -> None:
        self.entries: list[tuple[float, Any]] = []

    def schedule(self, target: Any, at: float) -> None:
        self.entries.append((at, target))


def keepalive(now: float, interval: float, timeout: float) -> tuple[WebSocket, Any]:
    """A WebSocket with keep-alive pings over fakes; the clock is ``clock.t``, the
    transport's unsent bytes ``fx.buffered[0]``."""
    clock = SimpleNamespace(t=now)
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
        listener=SimpleNamespace(scheduler=FakeScheduler()),
        send=sent.append,
        write_paused=False,
    )
    app = SimpleNamespace(closed=0)
    app.on_closed = lambda: setattr(app, "closed", app.closed + 1)
    ws = WebSocket(proto, wsproto.Codec(1 << 20), app, (interval, timeout))  # type: ignore[arg-type]
    return ws, SimpleNamespace(clock=clock, sent=sent, proto=proto, app=app,
                               buffered=buffered, aborted=aborted)


def test_silent_peer_dropped_exactly_at_the_timeout_despite_rounding() -> None:
    # (1288.291 + 0.3) - 1288.291 < 0.3 in floating point. Was: at the instant the
    # timer was armed for, `now - left >= timeout` was false and the timer was armed
    # again for that same instant, over and over within one scheduler pass.
    left, timeout = 1288.291, 0.3
    assert (left + timeout) - left < timeout
    ws, fx = keepalive(left - 0.2, 0.2, timeout)
    ws.on_timer(left)  # the interval is up: the ping leaves now
    assert fx.sent == [wsproto.Codec(1).ping(b"fastsockjs")]
    due = max(at for at, _ in fx.proto.listener.scheduler.entries)
    assert due == left + timeout
    fx.clock.t = due
    ws.on_timer(due)
    assert ws.closed and fx.app.closed == 1
    assert fx.sent[-1] == wsproto.Codec(1).close(1011, "keepalive ping timeout")


def test_superseded_entries_are_ignored() -> None:
    ws, fx = keepalive(100.0, 1.0, 5.0)
    entries = fx.proto.listener.scheduler.entries
    ws.on_timer(101.0)  # ping leaves, timer armed for 106
    fx.clock.t = 101.5
    ws.data_received(_masked_pong())  # re-arms earlier, for the next ping at 102.5
    assert sorted(at for at, _ in entries)[-2:] == [102.5, 106.0]
    ws.on_timer(102.5)  # the next ping
    n = len(entries)
    fx.clock.t = 106.0
    ws.on_timer(106.0)  # the entry the pong superseded: nothing to do, nothing pushed
    assert len(entries) == n and not ws.closed


def _masked_pong() -> bytes:
    payload = b"fastsockjs"
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x8A, 0x80 | len(payload)]) + mask + body



def test_a_peer_that_stops_reading_is_dropped_while_the_ping_waits() -> None:
    ws, fx = keepalive(100.0, 1.0, 5.0)
    fx.buffered[0] = 4_000_000  # a large send the peer never reads
    ws.on_timer(101.0)  # the ping is queued behind it
    t = 101.0
    while not ws.closed and t < 120.0:
        t += 1.0
        ws.on_timer(t)
    assert ws.closed and fx.app.closed == 1 and fx.aborted == [True]
    assert t == 106.0  # the timeout after the last byte the kernel took


def test_a_slow_reader_keeps_its_session_while_bytes_leave() -> None:
    ws, fx = keepalive(100.0, 1.0, 5.0)
    fx.buffered[0] = 4_000_000
    ws.on_timer(101.0)
    for t in range(102, 140):
        fx.buffered[0] -= 50_000  # slow, but reading
        ws.on_timer(float(t))
    assert not ws.closed
