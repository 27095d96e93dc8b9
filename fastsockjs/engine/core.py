"""The engine both hosts own: mounts and dispatch, the origin policy, the
event loop's services (spawn, timers), graceful shutdown and stats.

A host (the native listener in ``aio``, the ASGI application in ``asgi``)
turns bytes or ASGI events into a :class:`~fastsockjs.protocol.http.Request`
and an exchange (how to answer), asks :meth:`Engine.resolve` whose path it is
and what answers it there (remembered for a path its clients repeat), and hands
both to :meth:`Engine.answer`. Everything SockJS happens below.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastsockjs.engine.authorize import OPENING, Unauthorized, admit
from fastsockjs.engine.mount import Mount
from fastsockjs.engine.runtime import LoopRuntime
from fastsockjs.options import Options
from fastsockjs.protocol.http import TEXT_PLAIN, HttpError, Request
from fastsockjs.protocol.routing import MethodNotAllowed, NotFound, Route, owns
from fastsockjs.protocol.session import ReadyState
from fastsockjs.transports import HANDLERS
from fastsockjs.transports.base import Exchange

if TYPE_CHECKING:
    from fastsockjs.server import Server

__all__ = [
    "Engine", "Found", "HealthCheck", "HealthReport", "NOT_FOUND_BODY", "Resolved", "check_origin",
]

_log = logging.getLogger("fastsockjs.error")

NOT_FOUND_BODY = b"404 Error: Page not found\n"

# Endpoints a page of any origin can drive without CORS (script tags, iframes),
# so no Origin check can protect them: refused outright once origins are limited.
_UNCHECKABLE = frozenset(("iframe", "htmlfile", "jsonp", "jsonp_send"))
# Endpoints that only answer; CORS headers (or their absence) protect them.
_ANSWER_ONLY = frozenset(("greeting", "info", "info_options", "options"))

# While draining: requests that would start a session, and sends (the session is
# closing: a message accepted now would be dropped without the client knowing).
_NEW_SESSION = frozenset(("xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp",
                          "websocket", "raw_websocket"))
_SENDS = frozenset(("xhr_send", "jsonp_send"))
_DRAINING = "Server shutting down."

#: Paths remembered per method by Engine.resolve before it starts over (clients
#: repeat theirs; anyone else only fills it), and methods remembered (llhttp
#: knows a few dozen; the bound is for safety).
_MEMO = 4096
_MEMO_METHODS = 64

Found = Route | NotFound | MethodNotAllowed
Resolved = tuple[Mount, Found] | None

#: A health check: (ok, reason), cheap (no I/O, no await).
HealthCheck = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class HealthReport:
    """What :meth:`Engine.health` found: ``state`` is ``"ok"``, ``"drain"`` (serve
    the sessions this worker has, send it no new ones: it is shutting down or its
    broker is cut off) or ``"down"`` (it cannot serve even its own sessions: its
    event loop lags)."""

    state: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.state == "ok"


_REFUSAL = {
    400: "bad_request",
    403: "origin",
    404: "unknown_session",
    413: "too_large",
    426: "bad_version",
    500: "bad_payload",
    503: "capacity",
}


def check_origin(options: Options, request: Request, kind: str) -> None:
    """The origin policy of ``allowed_origins``: 403 (or 404 for endpoints no
    Origin check can protect) when the request's origin is not allowed."""
    if kind in _UNCHECKABLE:
        raise HttpError(404, NOT_FOUND_BODY.decode())
    if kind in _ANSWER_ONLY:
        return
    headers = request.headers
    origin = headers.get("origin", headers.get("sec-websocket-origin"))
    if not options.origin_allowed(origin):
        raise HttpError(403, "Origin not allowed.")


class Engine:
    """The mounted Servers of one host, and what they share."""

    def __init__(self) -> None:
        self.mounts: list[Mount] = []
        #: HTTP-level refusals by status (both hosts count theirs here).
        self.http_errors: dict[int, int] = {}
        self.runtime: LoopRuntime | None = None
        #: True from the start of a graceful shutdown: no new sessions, no sends.
        self.draining = False
        # (check, drain): a failing drain check asks for no new sessions only.
        self._health_checks: list[tuple[HealthCheck, bool]] = []
        # resolve()'s memo (the only one of routes): method -> path -> (mount,
        # route), or None (no mount's).
        self._resolved: dict[str, dict[str, Resolved]] = {}

    # -- mounting ----------------------------------------------------------------
    def mount(self, server: Server, options: Options) -> Mount:
        """Mount ``server`` at ``options.prefix``; the longest prefix matches first."""
        for other in self.mounts:
            if other.prefix == options.prefix:
                raise ValueError(f"prefix {options.prefix!r} is already mounted")
        mount = Mount(server, options, self.runtime)
        self.mounts.append(mount)
        self.mounts.sort(key=lambda m: len(m.prefix), reverse=True)
        self._resolved.clear()
        server.attached(mount, self.spawn)
        return mount

    def find(self, path: str) -> tuple[Mount, str] | None:
        """The mount owning ``path``, and the rest of the path below its prefix."""
        for mount in self.mounts:
            if owns(mount.prefix, path):
                return mount, path[len(mount.prefix) :]
        return None

    def resolve(self, method: str, path: str) -> Resolved:
        """The mount owning ``path`` and the route of ``method`` on it, or None:
        :meth:`find` and :meth:`Mount.route` in one, remembered per path (a polling
        client repeats its paths; the per-request cost is one lookup)."""
        table = self._resolved.get(method)
        if table is None:
            if len(self._resolved) >= _MEMO_METHODS:
                self._resolved.clear()
            table = self._resolved[method] = {}
        try:
            return table[path]
        except KeyError:
            pass
        owner = self.find(path)
        resolved = None if owner is None else (owner[0], owner[0].route(method, owner[1]))
        if len(table) >= _MEMO:
            table.clear()
        table[path] = resolved
        return resolved

    @property
    def max_message_size(self) -> int:
        return max((m.options.max_message_size for m in self.mounts), default=0)

    # -- the event loop ------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop) -> LoopRuntime:
        """Run on ``loop`` (once; a host serving one loop at a time may rebind
        when nothing is live)."""
        runtime = self.runtime
        if runtime is not None and runtime.loop is loop:
            return runtime
        if runtime is not None:
            if not runtime.loop.is_closed() and self.live_sessions:
                raise RuntimeError("an engine serves one event loop at a time")
            runtime.close()
        runtime = self.runtime = LoopRuntime(loop)
        for mount in self.mounts:
            mount.runtime = runtime
        return runtime

    def spawn(self, awaitable: Any) -> None:
        self.current_runtime().spawn(awaitable)

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()

    # -- requests ------------------------------------------------------------------
    def count_error(self, status: int) -> None:
        if status >= 400:
            errors = self.http_errors
            errors[status] = errors.get(status, 0) + 1

    def answer(
        self, mount: Mount, request: Request, exchange: Exchange, found: Found
    ) -> Awaitable[None] | None:
        """Answer a SockJS request, routed to ``found`` on ``mount`` by :meth:`resolve`.

        Raises HttpError for the host to answer (the host's exchange knows
        whether a status line can still be sent). When the mount's
        ``authorize`` hook is async, returns the task that answers once it has
        decided (a host may await it; errors are answered through the exchange).
        """
        if isinstance(found, Route):
            if self.draining:
                self._refuse_while_draining(mount, found.kind, found.session_id)
            options = mount.options
            endpoint: Any = mount
            try:
                if options.allowed_origins is not None:
                    check_origin(options, request, found.kind)
                if options.authorize is not None and found.kind in OPENING and (
                    found.session_id is None or found.session_id not in mount.sessions
                ):
                    # Only a request that would create a session is asked about.
                    verdict = options.authorize(request)
                    if inspect.isawaitable(verdict):
                        return self.current_runtime().spawn(
                            self._authorized(verdict, mount, request, exchange, found)
                        )
                    endpoint = admit(verdict, mount, request)
                HANDLERS[found.kind](endpoint, request, exchange, found)
            except HttpError as err:
                if type(err) is not Unauthorized:  # (counted by admit)
                    mount.refused(_REFUSAL.get(err.status, str(err.status)))
                raise
        elif isinstance(found, NotFound):
            exchange.respond(404, [("Content-Type", TEXT_PLAIN)], NOT_FOUND_BODY)
        else:
            raise HttpError(405, "", [("Allow", ", ".join(found.allowed))])
        return None

    def current_runtime(self) -> LoopRuntime:
        """The bound runtime, bound to the running loop on first use."""
        runtime = self.runtime
        return runtime if runtime is not None else self.bind(asyncio.get_running_loop())

    async def _authorized(
        self, verdict: Awaitable[Any], mount: Mount, request: Request, exchange: Any,
        found: Any,
    ) -> None:
        """The rest of a dispatch, once an async ``authorize`` hook has decided."""
        try:
            endpoint = admit(await verdict, mount, request)
            if getattr(exchange, "done", False):
                return  # the client went away meanwhile: no session for nobody
            HANDLERS[found.kind](endpoint, request, exchange, found)
        except HttpError as err:
            if type(err) is not Unauthorized:
                mount.refused(_REFUSAL.get(err.status, str(err.status)))
            exchange.error(err)
        except Exception:
            _log.exception("error answering %s %s", request.method, request.url)
            exchange.error(HttpError(500, "500 - Internal Server Error"))

    def _refuse_while_draining(self, mount: Mount, kind: str, session_id: str | None) -> None:
        """During a graceful shutdown a known session's polls still get its close
        frame; a new session or a message is refused with 503 (a client sees it:
        sockjs-client closes with "Sending error" / tries again)."""
        if kind in _SENDS or (
            kind in _NEW_SESSION and (session_id is None or mount.session(session_id) is None)
        ):
            mount.refused("draining")
            raise HttpError(503, _DRAINING, [("Retry-After", "1")])

    # -- health ----------------------------------------------------------------------
    def add_health_check(self, check: HealthCheck, *, drain: bool = False) -> None:
        """Consult ``check`` in :meth:`health`. ``drain``: its failure means "no new
        sessions" (the broker is cut off), not "down" (the loop lags)."""
        self._health_checks.append((check, drain))

    def health(self) -> HealthReport:
        """"down" if a check that is not a drain check fails; else "drain" while
        shutting down or if a drain check fails; else "ok"."""
        drain: str | None = _DRAINING.rstrip(".").lower() if self.draining else None
        for check, soft in self._health_checks:
            try:
                ok, reason = check()
            except Exception as exc:
                ok, reason = False, f"health check failed: {exc!r}"
            if ok:
                continue
            if not soft:
                return HealthReport("down", reason)
            if drain is None:
                drain = reason
        if drain is not None:
            return HealthReport("drain", drain)
        return HealthReport("ok", "ok")

    def answer_health(self, request: Request, exchange: Exchange) -> None:
        """The health endpoint: 200 "ok"; 503 and the reason otherwise. The query
        ``?drain_status=404`` answers 404 instead for "drain" (HAProxy's
        ``http-check disable-on-404`` then stops new sessions but keeps sending
        the worker's own)."""
        report = self.health()
        if report.ok:
            status = 200
        elif report.state == "drain" and request.param("drain_status") == "404":
            status = 404
        else:
            status = 503
        headers = [("Content-Type", TEXT_PLAIN), ("Cache-Control", "no-store")]
        body = ("ok" if report.ok else f"{report.state}: {report.reason}") + "\n"
        exchange.respond(status, headers, body.encode("utf-8"))

    # -- lifecycle -------------------------------------------------------------------
    @property
    def live_sessions(self) -> int:
        return sum(m.live_sessions for m in self.mounts)

    def unsent_closes(self) -> int:
        """Sessions whose close frame has not reached their client yet."""
        return sum(
            1
            for m in self.mounts
            for s in m.all_sessions()
            if not getattr(s, "close_sent", False) and s.state is not ReadyState.CLOSED
        )

    async def shutdown(
        self,
        timeout: float = 5.0,
        code: int = 1001,
        reason: str = "Server shutting down",
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        """Drain: refuse new sessions and sends, close every session with ``code``;
        wait at most ``timeout`` seconds for every close frame to reach its client
        (a polling session gets it on its next poll, which the host keeps
        answering) and for ``busy()`` to be false; then end what is left.
        ``'close'`` is emitted once per session."""
        self.draining = True
        for mount in self.mounts:
            for session in mount.all_sessions():
                try:
                    session.close(code, reason)
                except Exception:
                    _log.exception("closing %r at shutdown failed", session)
        if self.runtime is not None:
            loop = self.runtime.loop
            deadline = loop.time() + timeout
            while loop.time() < deadline and (self.unsent_closes() or busy()):
                await asyncio.sleep(0.02)
        for mount in self.mounts:
            for session in mount.all_sessions():
                session.expire()

    def open_connections(self) -> list[Any]:
        """The applications' open Connections, every mount."""
        return [
            s.connection
            for m in self.mounts
            for s in m.all_sessions()
            if s.state is ReadyState.OPEN
        ]

    def stats(self) -> dict[str, Any]:
        """Per-mount figures and HTTP refusals (the host adds its socket figures)."""
        return {
            "http_errors": dict(self.http_errors),
            "endpoints": [m.stats() for m in self.mounts],
        }
