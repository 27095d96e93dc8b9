"""One Server mounted at one prefix: its session table, the services its
sans-I/O sessions need (clock, timers, end-of-turn flush, tasks), its stats.

A Mount knows no socket: the host's exchanges reach it through the engine's
dispatch, and it reaches the event loop only through its runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastsockjs.connection import Connection
from fastsockjs.options import Options
from fastsockjs.protocol.http import (
    Headers,
    HttpError,
    Request,
    cors_headers,
    jsessionid_header,
    no_cache,
)
from fastsockjs.protocol.routing import MethodNotAllowed, NotFound, Route, route
from fastsockjs.protocol.session import FlushQueue, ReadyState, Session, SessionConnection
from fastsockjs.protocol.timers import TimerQueue
from fastsockjs.protocol.websocket import PerMessageDeflate
from fastsockjs.transports import SESSION_METHODS, enabled_endpoints
from fastsockjs.transports.info import iframe_page

if TYPE_CHECKING:
    from fastsockjs.engine.runtime import LoopRuntime
    from fastsockjs.server import Server

_CLOSED = ReadyState.CLOSED
#: Entries of a mount's memo of header blocks before it starts over: clients
#: repeat a few, and anyone else only fills it.
_MEMO = 4096


class Mount:
    """Both the transports' Endpoint and the sessions' SessionHost."""

    def __init__(self, server: Server, options: Options, runtime: LoopRuntime | None) -> None:
        self.server = server
        self.options = options
        self.prefix = options.prefix
        # The sessions' clock and end-of-turn flushes: the runtime's loop, once bound.
        self.clock: Callable[[], float] = self._not_running
        self.flushes = FlushQueue(self._schedule_unbound)
        self._runtime: LoopRuntime | None = None
        self.runtime = runtime
        self.enabled_endpoints = enabled_endpoints(options)
        self.heartbeat_delay = float(options.heartbeat_delay)
        self.disconnect_delay = float(options.disconnect_delay)
        self.max_outbox_bytes = options.max_outbox_bytes
        self.max_outbox_messages = options.max_outbox_messages
        self.drop_when_full = options.slow_client_policy == "drop"
        self.sessions: dict[str, Session] = {}
        # WebSocket sessions (SockJS-framed and raw) have no id: kept for shutdown.
        self.ws_live: set[Any] = set()
        # The WebSocket frame last built for one message, for a broadcast's
        # sessions to share: (quoted message, codec frame_key, frame bytes).
        self.frame_cache: tuple[Any, Any, bytes] = (None, None, b"")
        # permessage-deflate offers are negotiated here (None: compression off).
        compression = options.ws_compression
        self.ws_deflate = PerMessageDeflate(compression) if compression is not None else None
        # Counters for stats() (plain ints: incremented on hot paths).
        # Socket bytes of this mount's requests and WebSockets (native server only).
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.dropped = 0
        self.opened_total = 0
        self.closed_total = 0
        self.refusals: dict[str, int] = {}
        self._iframe = iframe_page(options.sockjs_url)
        # What repeats from request to request, worked out once: the session
        # headers for an (Origin, requested headers).
        self._header_blocks: dict[tuple[str | None, str | None], Headers] = {}
        self.log = options.logger or logging.getLogger("fastsockjs")
        self.log.debug("SockJS endpoint %r mounted (websocket=%s)", self.prefix,
                       options.websocket_enabled)

    @property
    def runtime(self) -> LoopRuntime | None:
        return self._runtime

    @runtime.setter
    def runtime(self, runtime: LoopRuntime | None) -> None:
        self._runtime = runtime
        if runtime is None:
            self.clock = self._not_running
            self.flushes.schedule = self._schedule_unbound
        else:
            self.clock = runtime.loop.time
            self.flushes.schedule = runtime.loop.call_soon

    def _rt(self) -> LoopRuntime:
        runtime = self._runtime
        if runtime is None:
            self._not_running()
        assert runtime is not None
        return runtime

    def _not_running(self) -> float:
        raise RuntimeError(f"the mount {self.prefix!r} is not running on an event loop")

    def _schedule_unbound(self, fn: Callable[[], None]) -> None:
        self._not_running()

    # -- SessionHost -------------------------------------------------------------
    @property
    def timers(self) -> TimerQueue:
        return self._rt().timers

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        self._rt().soon(fn, *args)

    def create_future(self) -> Any:
        return self._rt().create_future()

    def spawn(self, awaitable: Any) -> None:
        self._rt().spawn(awaitable)

    def new_connection(self, session: Any) -> Connection:
        return Connection(session, self.spawn)

    def forget(self, session: Session) -> None:
        if session.state is _CLOSED and session.connection.protocol:
            self.closed_total += 1
        sid = session.session_id
        if sid is not None:
            if self.sessions.get(sid) is session:
                del self.sessions[sid]
        else:
            self.ws_live.discard(session)

    def opened(self, connection: SessionConnection) -> None:
        self.opened_total += 1
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("session open %s %s from %s", connection.id, connection.protocol,
                           connection.remote_address)
        self.server.emit("connection", connection)

    # -- Endpoint (for transports) -------------------------------------------------
    def session(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def open_session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            self._check_capacity()
            session = Session(session_id, self)
            self.sessions[session_id] = session
        return session

    def new_ws_session(self) -> Session:
        self._check_capacity()
        session = Session(None, self)
        self.ws_live.add(session)
        return session

    def raw_host(self) -> Mount:
        self._check_capacity()
        return self

    def raw_opened(self, raw: Any) -> None:
        self.ws_live.add(raw)

    def raw_closed(self, raw: Any) -> None:
        if raw in self.ws_live:
            self.closed_total += 1
        self.ws_live.discard(raw)

    @property
    def live_sessions(self) -> int:
        return len(self.sessions) + len(self.ws_live)

    def _check_capacity(self) -> None:
        cap = self.options.max_sessions
        if cap is not None and self.live_sessions >= cap:
            raise HttpError(503, "Too many sessions.", [("Retry-After", "5")])

    def route(self, method: str, rest: str) -> Route | NotFound | MethodNotAllowed:
        """What answers ``method`` on ``rest`` (the path below the prefix)."""
        # (Not remembered here: Engine.resolve remembers it per path, for both hosts.)
        return route(SESSION_METHODS, self.enabled_endpoints, method, rest)

    def session_headers(self, request: Request, headers: Headers, cors: bool = True) -> None:
        options = self.options
        if options.jsessionid or not cors:
            jsessionid_header(request, options.jsessionid, headers)
            no_cache(headers)
            if cors:
                cors_headers(request, headers, options)
            return
        # Without a cookie to set, the block depends on two request headers only.
        get = request.headers.get
        key = (get("origin"), get("access-control-request-headers"))
        block = self._header_blocks.get(key)
        if block is None:
            block = []
            no_cache(block)
            cors_headers(request, block, options)
            if len(self._header_blocks) >= _MEMO:
                self._header_blocks.clear()
            self._header_blocks[key] = block
        headers += block

    def iframe_page(self) -> tuple[bytes, str]:
        return self._iframe

    # -- lifecycle ---------------------------------------------------------------
    def all_sessions(self) -> list[Any]:
        return [*self.sessions.values(), *self.ws_live]

    def refused(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        """Counters and gauges of this mount (cheap enough to poll)."""
        by_transport: dict[str, int] = {}
        queued = 0
        for session in self.all_sessions():
            protocol = session.connection.protocol or "connecting"
            by_transport[protocol] = by_transport.get(protocol, 0) + 1
            queued += session.queued_bytes
        return {
            "prefix": self.prefix,
            "sessions": self.live_sessions,
            "sessions_by_transport": by_transport,
            "opened": self.opened_total,
            "closed": self.closed_total,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "dropped": self.dropped,
            "queued_bytes": queued,
            "refused": dict(self.refusals),
        }

    def __repr__(self) -> str:
        return f"<Mount {self.prefix!r} sessions={len(self.sessions)}>"
