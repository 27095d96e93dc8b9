"""The SockJS session state machine (sans-I/O).

Theory of operation
-------------------
A session outlives the HTTP requests that carry it. At most one *receiver*
(a held polling request, a streaming response, a WebSocket) is attached at a
time; messages the application writes meanwhile wait in the outbox.

    CONNECTING --first receiver: send "o"--> OPEN --close()--> CLOSING
        \\                                     |                 |
         `------------- timeout / abort ------+-----------------+--> CLOSED

* Every message written in one event-loop turn leaves as one ``a[...]`` frame:
  ``send()`` only queues and joins the host's :class:`FlushQueue`, which the
  host runs once at the end of the turn. ``o``, ``h`` and ``c`` frames are
  always written on their own.
* One deadline per session (a :class:`~fastsockjs.protocol.timers.Deadline`
  on the host's timer queue): the heartbeat while a receiver is attached, the
  disconnect timeout while none is. A frame sent postpones the heartbeat
  without touching the deadline: ``flush`` notes the time, and the heartbeat
  deadline, when it comes, moves itself to ``heartbeat_delay`` after the last
  frame if there was one since (one re-arm per heartbeat period, not per
  message).
* A receiver that ends normally starts the disconnect timeout; one the client
  aborted closes the session at once (``delay_disconnect`` false), as
  sockjs-node does. ``'close'`` is emitted exactly once, when CLOSED is reached.

The host (the asyncio layer, or a fake in unit tests) supplies the clock,
the timer, end-of-turn flushing and the event delivery.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any, Protocol

from fastsockjs import frames
from fastsockjs.protocol.timers import Deadline, TimerQueue

__all__ = [
    "ANOTHER_CONNECTION", "FlushQueue", "ReadyState", "Receiver", "Session", "SessionConnection",
    "SessionHost",
]

_log = logging.getLogger("fastsockjs.error")

ANOTHER_CONNECTION = frames.close_frame(2010, "Another connection still open")
OUTBOX_FULL = (1013, "Outgoing queue full")


class ReadyState(enum.IntEnum):
    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class FlushQueue:
    """The sessions that have messages queued in this loop turn, flushed together
    at its end: ``schedule(run)`` (the loop's ``call_soon``, a test's list) is
    asked once per turn, by the first session that joins."""

    __slots__ = ("schedule", "_dirty")

    def __init__(self, schedule: Callable[[Callable[[], None]], Any]) -> None:
        self.schedule = schedule
        self._dirty: list[Session] = []

    def add(self, session: Session) -> None:
        dirty = self._dirty
        dirty.append(session)
        if len(dirty) == 1:
            self.schedule(self.run)

    def run(self) -> None:
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            try:
                session.flush()
            except Exception:
                _log.exception("flushing %r failed", session)


class SessionHost(Protocol):
    """What a session needs from its environment: ``clock()`` is the time now
    (plain attributes, not methods of the host: they are read per message)."""

    heartbeat_delay: float
    disconnect_delay: float
    prefix: str
    max_outbox_bytes: int
    max_outbox_messages: int
    drop_when_full: bool
    # Counters the host keeps for stats(); the session only increments them.
    messages_in: int
    messages_out: int
    dropped: int

    clock: Callable[[], float]
    flushes: FlushQueue

    @property
    def timers(self) -> TimerQueue: ...
    def defer(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def create_future(self) -> Any: ...
    def spawn(self, awaitable: Any) -> None: ...
    def forget(self, session: Session) -> None: ...
    def new_connection(self, session: Session) -> SessionConnection: ...
    def opened(self, connection: SessionConnection) -> None: ...


class SessionConnection(Protocol):
    """The application's object for a session, made by the host (the public
    :class:`fastsockjs.Connection`): events out, request facts in."""

    id: str
    protocol: str
    remote_address: str | None

    def emit(self, event: str, *args: Any) -> bool: ...
    def emit_each(self, event: str, items: list[Any], alive: Any) -> None: ...
    def remove_all_listeners(self) -> None: ...
    def fill(self, request: Any, protocol: str, prefix: str) -> None: ...


class Receiver(Protocol):
    """A transport's end of a session: where frames go."""

    protocol: str
    delay_disconnect: bool
    session: Session | None
    #: The connection's flow control: ``flow.write_paused`` is true while the
    #: socket pushes back (a plain attribute: it is read on every write).
    flow: Any

    @property
    def paused(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    def send_frame(self, frame: str) -> None: ...
    def send_messages(self, quoted: list[str]) -> None: ...
    def heartbeat(self) -> None: ...
    def finish(self) -> None: ...


_HEARTBEAT = 1
_DISCONNECT = 2


class Drainable:
    """``await conn.drain()`` support: futures resolved once ``drained`` holds.

    The class using it provides ``host`` (for futures) and the ``drained``
    property, sets ``_waiters = None`` at construction, and calls
    :meth:`wake_drainers` when ``drained`` may have become true.
    """

    __slots__ = ("_waiters",)

    host: Any
    _waiters: list[Any] | None

    @property
    def drained(self) -> bool:
        raise NotImplementedError

    def wait_drained(self) -> Any:
        fut = self.host.create_future()
        if self.drained:
            fut.set_result(None)
        else:
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(fut)
        return fut

    def wake_drainers(self) -> None:
        waiters = self._waiters
        if not waiters or not self.drained:
            return
        self._waiters = None
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


_OPEN = ReadyState.OPEN
_quote = frames.quote


class Session(Drainable):
    """One SockJS session. ``session_id`` is None for WebSocket sessions."""

    __slots__ = (
        "session_id",
        "host",
        "state",
        "outbox",
        "outbox_bytes",
        "dropped",
        "receiver",
        "connection",
        "close_frame",
        "close_sent",
        "_deadline",
        "_deadline_kind",
        "_sent_at",
        "_flush_pending",
        "_early",
        "_close_deferred",
        "__weakref__",
    )

    def __init__(self, session_id: str | None, host: SessionHost) -> None:
        self.session_id = session_id
        self.host = host
        self.state = ReadyState.CONNECTING
        self.outbox: list[str] = []
        self.outbox_bytes = 0
        self.dropped = 0
        self.receiver: Receiver | None = None
        self.close_frame = ""
        # The close frame reached a receiver (a graceful shutdown waits for this).
        self.close_sent = False
        self._deadline = Deadline(host.timers, self.on_timer)
        self._deadline_kind = 0
        # When the last frame of messages went out (the heartbeat counts from it).
        self._sent_at = 0.0
        self._flush_pending = False
        # Messages that arrive before 'connection' was emitted (e.g. in the same
        # packet as the WebSocket handshake) wait here for the app's handlers.
        self._early: list[Any] | None = None
        # Closed before 'connection' was emitted: 'close' waits for it (see _announce).
        self._close_deferred = False
        self._waiters: list[Any] | None = None
        self.connection = host.new_connection(self)
        # A session nobody attaches to must not live forever.
        self._set_deadline(_DISCONNECT, host.clock() + host.disconnect_delay)

    # -- deadlines -------------------------------------------------------
    def _set_deadline(self, kind: int, at: float) -> None:
        self._deadline_kind = kind
        self._deadline.set(at)

    def on_timer(self, now: float) -> None:
        """The time this session's deadline was set for has come."""
        if self.state is ReadyState.CLOSED or self._deadline_kind == 0:
            return
        if self._deadline_kind == _HEARTBEAT:
            recv = self.receiver
            if recv is not None:
                delay = self.host.heartbeat_delay
                due = self._sent_at + delay
                if now < due:  # frames went out meanwhile: a delay after the last
                    self._set_deadline(_HEARTBEAT, due)
                    return
                self._set_deadline(_HEARTBEAT, now + delay)
                recv.heartbeat()
        else:
            self.expire()

    # -- receivers -------------------------------------------------------
    def attach(self, recv: Receiver, request: Any = None) -> bool:
        """Attach a receiver; returns False if it was refused or answered at once.

        ``request`` (the HTTP request that brought the receiver) refreshes the
        request facts the application sees on its connection.
        """
        if self.receiver is not None:
            recv.send_frame(ANOTHER_CONNECTION)
            recv.finish()
            return False
        if self.state is ReadyState.CLOSING or self.state is ReadyState.CLOSED:
            self._drain_outbox_to(recv)
            recv.send_frame(self.close_frame)
            self.close_sent = True
            recv.finish()
            if self.state is ReadyState.CLOSING:
                self._set_deadline(_DISCONNECT, self.host.clock() + self.host.disconnect_delay)
            return False
        self.receiver = recv
        recv.session = self
        if request is not None:
            self.connection.fill(request, recv.protocol, self.host.prefix)
        if self.state is ReadyState.CONNECTING:
            recv.send_frame(frames.OPEN_FRAME)
            self.state = ReadyState.OPEN
            self._early = []
            self.host.defer(self._announce)
        if self.receiver is None:  # a polling receiver ends after one frame
            return True
        if self.outbox:
            self.flush()
        if self.receiver is not None:
            self._set_deadline(_HEARTBEAT, self.host.clock() + self.host.heartbeat_delay)
        return True

    def detach(self, recv: Receiver) -> None:
        """The receiver ended (``delay_disconnect`` false: the client aborted it)."""
        if self.receiver is not recv:
            return
        self.receiver = None
        recv.session = None
        if recv.delay_disconnect:
            self._set_deadline(_DISCONNECT, self.host.clock() + self.host.disconnect_delay)
        else:
            self.expire()

    def _drain_outbox_to(self, recv: Receiver) -> None:
        if self.outbox:
            batch, self.outbox = self.outbox, []
            self.outbox_bytes = 0
            self.host.messages_out += len(batch)
            recv.send_messages(batch)

    # -- application side --------------------------------------------------
    def send(self, message: str) -> bool:
        if self.state is not _OPEN:
            return False
        return self.send_quoted(_quote(message))

    def write_quoted(self, quoted: str, text: str) -> bool:
        return self.send_quoted(quoted)

    def send_quoted(self, quoted: str) -> bool:
        """Queue an already-quoted message (broadcast encodes once for all)."""
        if self.state is not _OPEN:
            return False
        host = self.host
        size = self.outbox_bytes + len(quoted)
        recv = self.receiver
        # The socket buffer counts too, but is only worth asking about once the
        # transport has pushed back (paused): until then it is small.
        if (
            size > host.max_outbox_bytes
            or len(self.outbox) >= host.max_outbox_messages
            or (
                recv is not None
                and recv.flow.write_paused
                and size + recv.buffered > host.max_outbox_bytes
            )
        ):
            return self._overflow()
        self.outbox.append(quoted)
        self.outbox_bytes = size
        if recv is not None and not self._flush_pending:
            self._flush_pending = True
            host.flushes.add(self)
        return True

    def _overflow(self) -> bool:
        """The client cannot keep up: apply the slow-client policy."""
        self.dropped += 1
        self.host.dropped += 1
        if not self.host.drop_when_full:
            # What is queued will never be read in time: close straight away.
            self.outbox = []
            self.outbox_bytes = 0
            self.close(*OUTBOX_FULL)
        return False

    def flush(self) -> None:
        """Write the outbox as one frame (the host calls this at end of turn)."""
        self._flush_pending = False
        recv = self.receiver
        if recv is None or not self.outbox:
            return
        batch, self.outbox = self.outbox, []
        self.outbox_bytes = 0
        self.host.messages_out += len(batch)
        recv.send_messages(batch)
        if self.receiver is not None:  # (a polling receiver ended with this frame)
            self._sent_at = self.host.clock()  # postpones the heartbeat: see on_timer
        if self._waiters:
            self.wake_drainers()

    def close(self, code: int = 1000, reason: str = "Normal closure") -> bool:
        if self.state is not ReadyState.OPEN:
            return False
        self.state = ReadyState.CLOSING
        self.close_frame = frames.close_frame(code, reason)
        recv = self.receiver
        if recv is not None:
            self._drain_outbox_to(recv)
            if self.receiver is not None:
                recv.send_frame(self.close_frame)
                self.close_sent = True
            recv.finish()
        return True

    def fail(self, code: int, reason: str) -> None:
        """The client broke the protocol: the session ends with ``c[code,reason]``
        (the receiver sends it and drops its connection)."""
        if self.state is ReadyState.OPEN:
            self.close_frame = frames.close_frame(code, reason)
            self.state = ReadyState.CLOSING

    def receive(self, message: Any) -> None:
        """A message from the client."""
        if self.state is _OPEN:
            self.receive_many([message])

    def _announce(self) -> None:
        """Emit 'connection' (after 'o' went out), then what arrived meanwhile, then
        'close' if the session already ended (e.g. a close frame in the handshake's
        packet): the application sees every session it was told of end."""
        self.host.opened(self.connection)
        early, self._early = self._early, None
        if early:
            self.host.messages_in += len(early)
            self.connection.emit_each("data", early, self)
        if self._close_deferred:
            self._close_deferred = False
            self.connection.emit("close")
            self.connection.remove_all_listeners()

    def receive_many(self, messages: list[Any]) -> None:
        """Messages from the client, in order (what one frame or body carried)."""
        if self._early is not None:
            self._early.extend(messages)
            return
        self.host.messages_in += len(messages)
        # A handler may close the session: later messages are then dropped.
        self.connection.emit_each("data", messages, self)

    def expire(self) -> None:
        """End the session: CLOSED, forgotten, ``'close'`` emitted once."""
        if self.state is ReadyState.CLOSED:
            return
        recv = self.receiver
        if recv is not None:
            self.receiver = None
            recv.session = None
            recv.finish()
        self.state = ReadyState.CLOSED
        self._deadline_kind = 0
        self._deadline.close()
        self.outbox = []
        self.outbox_bytes = 0
        if not self.close_frame:
            self.close_frame = frames.close_frame(1002, "Connection interrupted")
        self.host.forget(self)
        self.wake_drainers()
        if self._early is not None:  # 'connection' not emitted yet
            self._close_deferred = True
            return
        self.connection.emit("close")
        self.connection.remove_all_listeners()

    @property
    def queued_bytes(self) -> int:
        """Bytes written by the application and not yet taken by the kernel."""
        receiver = self.receiver
        return self.outbox_bytes + (receiver.buffered if receiver is not None else 0)

    # -- drain ---------------------------------------------------------------
    @property
    def drained(self) -> bool:
        if self.state is ReadyState.CLOSED:
            return True
        if self.outbox:
            return False
        recv = self.receiver
        return recv is None or not recv.paused

