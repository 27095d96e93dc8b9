"""Fakes the unit tests share: a clock with the loop calls the engine and the
HTTP connection make, a session host, a receiver, an exchange that records
every byte, and an asyncio transport. No event loop, no sockets: time moves
only when a test calls ``advance``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from fastsockjs.connection import Connection
from fastsockjs.protocol.session import FlushQueue, Session
from fastsockjs.protocol.timers import TimerQueue


# -- time ---------------------------------------------------------------------------
class FakeHandle:
    """What ``call_later`` returns."""

    def __init__(self, at: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.at = at
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A loop's clock and calls, run by hand: ``time()``, a TimerQueue, ``call_later``
    and end-of-turn ``call_soon`` (run by :meth:`end_turn`)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t
        self.timers = TimerQueue()
        self._later: list[tuple[float, int, FakeHandle]] = []
        self._seq = itertools.count()
        self.soon: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def time(self) -> float:
        return self.t

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> FakeHandle:
        handle = FakeHandle(self.t + delay, fn, args)
        heapq.heappush(self._later, (handle.at, next(self._seq), handle))
        return handle

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.soon.append((fn, args))

    @property
    def pending_later(self) -> list[FakeHandle]:
        """``call_later`` handles not yet run or cancelled."""
        return [h for _, _, h in self._later if not h.cancelled]

    def end_turn(self) -> None:
        """Run what was called soon (and what that calls soon), as a loop turn ends."""
        while self.soon:
            calls, self.soon = self.soon, []
            for fn, args in calls:
                fn(*args)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing deadlines and ``call_later`` handles on the way, in order."""
        end = self.t + seconds
        while True:
            next_timer = self.timers.next_at
            next_later = self._later[0][0] if self._later else float("inf")
            at = min(next_timer, next_later)
            if at > end:
                break
            self.t = max(self.t, at)
            if next_timer <= next_later:
                self.timers.run_due(self.t)
            else:
                _, _, handle = heapq.heappop(self._later)
                if not handle.cancelled:
                    handle.fn(*handle.args)
        self.t = end


class FakeFuture:
    def __init__(self) -> None:
        self.result: Any = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._done = True
        self.result = value


class FakeRuntime:
    """An engine LoopRuntime on a FakeClock (for a real Mount without a loop)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.loop = self.clock = clock or FakeClock()
        self.timers = self.clock.timers
        self.spawned: list[Any] = []

    def now(self) -> float:
        return self.clock.time()

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.clock.call_soon(fn, *args)

    def create_future(self) -> FakeFuture:
        return FakeFuture()

    def spawn(self, awaitable: Any) -> None:
        self.spawned.append(awaitable)
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()  # a coroutine never run: no "never awaited" warning


# -- the session's side -------------------------------------------------------------
class FakeHost:
    """A SessionHost: clock, timer heap, end-of-turn flush and deferred calls, all by hand."""

    prefix = "/t"
    max_outbox_bytes = 1000
    max_outbox_messages = 10
    drop_when_full = False
    messages_in = 0
    messages_out = 0
    dropped = 0

    def __init__(self, heartbeat: float = 25.0, disconnect: float = 5.0) -> None:
        self.heartbeat_delay = heartbeat
        self.disconnect_delay = disconnect
        self.time = 1000.0
        self.timers = TimerQueue()
        # The flush queue's run, once asked for in this turn (end_turn calls it).
        self.turn_end: list[Callable[[], None]] = []
        self.flushes = FlushQueue(self.turn_end.append)
        self.deferred: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.forgotten: list[Session] = []
        self.opened_conns: list[Any] = []

    def clock(self) -> float:
        return self.time

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        self.deferred.append((fn, args))

    def create_future(self) -> Any:
        return FakeFuture()

    def spawn(self, awaitable: Any) -> None:
        raise AssertionError("no coroutines here")

    def forget(self, session: Session) -> None:
        self.forgotten.append(session)

    def new_connection(self, session: Session) -> Connection:
        return Connection(session)

    def opened(self, connection: Any) -> None:
        self.opened_conns.append(connection)

    def end_turn(self) -> None:
        """What the event loop does between turns: deferred calls, then flushes."""
        deferred, self.deferred = self.deferred, []
        for fn, args in deferred:
            fn(*args)
        runs = self.turn_end[:]
        self.turn_end.clear()  # (in place: the flush queue appends to this list)
        for run in runs:
            run()

    def advance(self, seconds: float) -> None:
        """Move the clock, firing what comes due on the way, in order."""
        end = self.time + seconds
        while self.timers.next_at <= end:
            self.time = max(self.time, self.timers.next_at)
            self.timers.run_due(self.time)
        self.time = end


class Recv:
    """A receiver recording frames; ``limit`` frames end it (1 = polling)."""

    protocol = "test"

    def __init__(self, limit: int = 10**9, delay_disconnect: bool = True) -> None:
        self.frames: list[str] = []
        self.limit = limit
        self.delay_disconnect = delay_disconnect
        self.session: Session | None = None
        self.finished = False
        self.paused = False
        self.buffered = 0
        self.flow = self

    @property
    def write_paused(self) -> bool:
        return self.paused

    def send_frame(self, frame: str) -> None:
        if self.finished:
            return
        self.frames.append(frame)
        if len(self.frames) >= self.limit:
            self.finish()

    def send_messages(self, quoted: list[str]) -> None:
        self.send_frame("a[" + ",".join(quoted) + "]")

    def heartbeat(self) -> None:
        self.send_frame("h")

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.session is not None:
            self.session.detach(self)

    def abort(self) -> None:
        self.delay_disconnect = False
        self.finish()


# -- the host's side of a request -------------------------------------------------------
class FakeExchange:
    """An Exchange (and the Sink of a streamed answer) that records how it was
    answered: status, headers, the body, each streamed write, the end."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.streamed: list[bytes] = []
        self.ended = False
        self.owner: Any = None
        self.upgraded: tuple[Any, int, bool, Any] | None = None
        self.paused = False
        self.buffered = 0
        self.write_paused = False
        self.flow = self

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        self.status, self.headers, self.body = status, headers, body

    def stream(self, status: int, headers: list[tuple[str, str]]) -> FakeExchange:
        self.status, self.headers = status, headers
        return self

    def upgrade(self, app: Any, max_size: int, hixie76: bool = False, ping: Any = None) -> Any:
        self.upgraded = (app, max_size, hixie76, ping)
        return app

    @property
    def data(self) -> bytes:
        """Everything streamed so far, as the client would read it."""
        return b"".join(self.streamed)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, (name, self.headers)
        return values[0] if values else None

    # Sink
    def attach(self, owner: Any) -> None:
        self.owner = owner

    def write(self, data: bytes) -> None:
        assert not self.ended, "write after end"
        self.streamed.append(data)

    def end(self, last: bytes = b"") -> None:
        assert not self.ended, "ended twice"
        self.streamed.append(last)
        self.ended = True


class FakeTransport:
    """An asyncio transport recording writes, half-close, close and read pausing."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.peer = peer
        self.written: list[bytes] = []
        self.eof = False
        self.closed = False
        self.reading = True
        self.buffer_size = 0
        self.eof_error: BaseException | None = None

    @property
    def data(self) -> bytes:
        return b"".join(self.written)

    def take(self) -> bytes:
        """What was written since the last take."""
        out = self.data
        self.written = []
        return out

    def write(self, data: bytes) -> None:
        assert not self.closed and not self.eof, "write after close"
        self.written.append(bytes(data))

    def write_eof(self) -> None:
        if self.eof_error is not None:
            raise self.eof_error
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return self.buffer_size


# -- a real Mount on a fake runtime ------------------------------------------------------
class Mounted:
    """A Server mounted on a fake runtime: the real Endpoint and SessionHost the
    transports drive, with its clock in the test's hands. Records the
    application's side: connections opened, messages received, closes."""

    def __init__(self, **options: Any) -> None:
        from fastsockjs.engine.mount import Mount
        from fastsockjs.server import Server

        options.setdefault("prefix", "/echo")
        self.server = Server(**options)
        self.runtime = FakeRuntime()
        self.clock = self.runtime.clock
        # (Duck-typed: the Mount uses only what FakeRuntime has of a LoopRuntime.)
        self.mount = Mount(self.server, self.server.options, self.runtime)  # type: ignore[arg-type]
        self.conns: list[Any] = []
        self.received: list[Any] = []
        self.closed: list[str] = []

        def on_connection(conn: Any) -> None:
            self.conns.append(conn)
            conn.on("data", self.received.append)
            conn.on("close", lambda: self.closed.append(conn.id))

        self.server.on("connection", on_connection)

    def call(self, handler: Callable[..., None], method: str, url: str, body: bytes = b"",
             headers: dict[str, str] | None = None, route: Any = None,
             upgrade: bool = False) -> FakeExchange:
        """Run ``handler`` on one request, then end the loop turn; returns the exchange."""
        from fastsockjs.protocol.http import Request

        exchange = FakeExchange()
        request = Request(method, url, {"host": "h", **(headers or {})}, body=body,
                          remote=("10.0.0.1", 5555), upgrade=upgrade)
        handler(self.mount, request, exchange, route)
        self.clock.end_turn()
        return exchange
