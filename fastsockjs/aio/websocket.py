"""A WebSocket connection after the upgrade: feeds the codec, answers pings,
runs the closing handshake, and calls its application
(``on_open / on_text / on_binary / on_closed``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from fastsockjs.protocol import websocket as wsproto
from fastsockjs.protocol.timers import Deadline, TimerQueue


class Carrier(Protocol):
    """The HTTP connection a WebSocket took over (an ``HttpProtocol``)."""

    loop: asyncio.AbstractEventLoop
    transport: Any
    write_paused: bool
    ws: Any

    def send(self, data: bytes) -> None: ...
    def linger_close(self) -> None: ...
    def clear_deadline(self) -> None: ...

_log = logging.getLogger("fastsockjs.error")

#: How long we wait for the peer's close frame after sending ours.
CLOSE_TIMEOUT = 5.0


class WebSocket:
    """Keep-alive: with ``ping=(interval, timeout)`` a ping is sent after
    ``interval`` seconds, and the peer is dropped (1011) if no pong came
    ``timeout`` seconds after the ping actually left: the clock starts once
    every byte queued before the ping has reached the kernel, so a large
    send on a slow link is not taken for a dead peer. While the ping waits
    behind such a send, a peer that takes no byte at all for ``timeout``
    seconds (it stopped reading) is dropped the same way."""

    __slots__ = (
        "proto",
        "transport",
        "codec",
        "app",
        "close_sent",
        "closed",
        "_timer",
        "_ping",
        "_written",
        "_ping_end",
        "_ping_left_at",
        "_sent_mark",
        "_sent_mark_at",
        "_keepalive",
    )

    def __init__(
        self,
        proto: Carrier,
        timers: TimerQueue,
        codec: Any,
        app: Any,
        ping: tuple[float, float] | None = None,
    ) -> None:
        self.proto = proto
        self.transport = proto.transport
        self.codec = codec
        self.app = app
        self.close_sent = False
        self.closed = False
        self._timer: Any = None
        self._ping = ping
        self._written = 0  # bytes handed to the transport (for ping departure)
        self._ping_end = 0  # _written just after the outstanding ping; 0: none
        self._ping_left_at = 0.0
        # While a ping waits to leave: bytes the kernel had taken, and since when.
        self._sent_mark = 0
        self._sent_mark_at = 0.0
        self._keepalive = Deadline(timers, self.on_timer)
        if ping is not None and isinstance(codec, wsproto.Codec):
            self._rearm(self.proto.loop.time() + ping[0])

    @property
    def paused(self) -> bool:
        return self.proto.write_paused

    @property
    def buffered(self) -> int:
        return int(self.transport.get_write_buffer_size())

    @property
    def flow(self) -> Any:
        return self.proto

    # -- keep-alive ----------------------------------------------------------------
    def _rearm(self, at: float) -> None:
        self._keepalive.set(at)

    def on_timer(self, now: float) -> None:
        if self.closed or self._ping is None:
            return
        _interval, timeout = self._ping
        if self._ping_end:
            if not self._ping_left_at:
                sent = self._written - self.transport.get_write_buffer_size()
                if sent >= self._ping_end:
                    self._ping_left_at = now
                elif sent > self._sent_mark:
                    self._sent_mark, self._sent_mark_at = sent, now  # slow, but reading
                elif now >= self._sent_mark_at + timeout:
                    self._fail_keepalive()  # not reading at all
                    return
                # Check again soon; until the ping has left, the peer is not late.
                self._rearm(now + min(1.0, timeout))
                return
            # Compare with the very sum the timer was armed for: `now - left >= timeout`
            # can be false at that time (rounding), re-arming it for the same instant
            # over and over inside one scheduler pass.
            due = self._ping_left_at + timeout
            if now >= due:
                self._fail_keepalive()
                return
            self._rearm(due)
            return
        if self.close_sent:
            return
        self._write(self.codec.ping(b"fastsockjs"))
        self._ping_end = self._written
        buffered = self.transport.get_write_buffer_size()
        self._ping_left_at = now if buffered == 0 else 0.0
        self._sent_mark, self._sent_mark_at = self._written - buffered, now
        self._rearm(now + (min(1.0, timeout) if not self._ping_left_at else timeout))

    def _fail_keepalive(self) -> None:
        if not self.close_sent:
            self.close_sent = True
            self._write(self.codec.close(1011, "keepalive ping timeout"))
        if self.transport.get_write_buffer_size():
            # A peer that does not read would hold a graceful close open forever.
            self.transport.abort()
            self.connection_lost()
            return
        self._shutdown()

    def _write(self, data: bytes) -> None:
        self._written += len(data)
        self.proto.send(data)

    def start(self, tail: bytes) -> None:
        self.app.on_open(self)
        if tail:
            self.data_received(tail)

    def data_received(self, data: bytes) -> None:
        events = self.codec.receive_data(data)
        app = self.app
        for kind, payload in events:
            if self.closed:
                return
            if kind == wsproto.TEXT:
                if not self.close_sent:
                    app.on_text(payload)
            elif kind == wsproto.PING:
                if not self.close_sent:
                    self._write(self.codec.pong(payload))
            elif kind == wsproto.PONG:
                if self._ping_end and self._ping is not None:
                    self._ping_end = 0
                    self._ping_left_at = 0.0
                    self._rearm(self.proto.loop.time() + self._ping[0])
            elif kind == wsproto.BINARY:
                if not self.close_sent:
                    app.on_binary(payload)
            elif kind == wsproto.CLOSE:
                code, _reason = payload
                if not self.close_sent:
                    # Echo the code (RFC 6455 5.5.1); 1005 means "none given".
                    self.close_sent = True
                    echo = None if code == wsproto.CLOSE_NO_STATUS else code
                    self._write(self.codec.close(echo, ""))
                self._shutdown()
                return
            elif kind == wsproto.FAIL:
                code, reason = payload
                if not self.close_sent:
                    self.close_sent = True
                    self._write(self.codec.close(code, reason))
                self._shutdown(linger=True)
                return

    def send_text(self, text: str) -> None:
        if not self.close_sent:
            data = self.codec.text(text)
            self._written += len(data)
            self.proto.send(data)

    def send_encoded(self, data: bytes) -> None:
        """A text frame ``self.codec.text`` already built (shared by a broadcast)."""
        if not self.close_sent:
            self._write(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the socket closes when the peer answers."""
        if self.close_sent or self.closed:
            return
        self.close_sent = True
        self._write(self.codec.close(code, reason))
        if isinstance(self.codec, wsproto.Hixie76Codec):
            self._shutdown()
            return
        self._timer = self.proto.loop.call_later(CLOSE_TIMEOUT, self.abort)

    def abort(self) -> None:
        """Drop the connection now (what was written still goes out first)."""
        self._shutdown(linger=True)

    def _shutdown(self, linger: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed:
            if linger:
                # The peer may still be sending: see HttpProtocol.linger_close.
                self.proto.linger_close()
            else:
                self.transport.close()
            self.connection_lost()

    def connection_lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_sent = True
        self._keepalive.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        app, self.app = self.app, None
        try:
            app.on_closed()
        except Exception:
            _log.exception("WebSocket close handler failed")


class Hixie76Handshake:
    """Collects the 8-byte nonce that follows a draft-76 request, then answers."""

    __slots__ = ("proto", "timers", "request", "app", "buf", "max_size")

    def __init__(
        self, proto: Carrier, timers: TimerQueue, request: Any, app: Any, max_size: int
    ) -> None:
        self.proto = proto
        self.timers = timers
        self.request = request
        self.app = app
        self.buf = b""
        self.max_size = max_size

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) < 8:
            return
        nonce, rest = self.buf[:8], self.buf[8:]
        self.proto.clear_deadline()
        try:
            answer = wsproto.hixie76_answer(self.request, nonce)
        except ValueError:
            self.proto.transport.close()
            return
        self.proto.send(answer)
        ws = WebSocket(self.proto, self.timers, wsproto.Hixie76Codec(self.max_size), self.app, None)
        self.proto.ws = ws
        ws.start(rest)

    def connection_lost(self) -> None:
        pass
