"""The ``authorize`` hook's verdict, and how a refusal with a close code is
answered without a session.

The engine calls the hook before a request that would create a session is
handled (see :meth:`Engine.answer`). A verdict that refuses with a close
code hands the transport's handler a stand-in for the mount, whose "session"
answers every receiver with ``c[code,reason]`` at once: the transports run
unchanged, the client gets the close frame in its transport's own framing,
and no session, Connection or ``'connection'`` event ever exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastsockjs import frames
from fastsockjs.connection import Connection
from fastsockjs.options import Refuse
from fastsockjs.protocol.http import HttpError, Request

if TYPE_CHECKING:
    from fastsockjs.engine.mount import Mount

__all__ = ["OPENING", "Unauthorized", "admit"]

#: Route kinds that create a session when theirs does not exist yet.
OPENING = frozenset(
    ("xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp", "websocket", "raw_websocket")
)

_FORBIDDEN = Refuse(status=403)


class Unauthorized(HttpError):
    """A refusal with a status (already counted in the mount's refusals)."""


def admit(verdict: Any, mount: Mount, request: Request) -> Any:
    """The endpoint to hand the request's handler: ``mount`` when ``verdict``
    lets the session open, a refusing stand-in for a close-code refusal.
    Raises HttpError for a refusal with a status."""
    if verdict is None or verdict is True:
        return mount
    if isinstance(verdict, dict):
        request.auth = verdict
        return mount
    if verdict is False:
        verdict = _FORBIDDEN
    if not isinstance(verdict, Refuse):
        raise TypeError(
            "authorize must return None, True, False, a dict or a Refuse, "
            f"not {type(verdict).__name__}"
        )
    mount.refused("unauthorized")
    if verdict.code is None:
        raise Unauthorized(verdict.status or 403, verdict.reason)
    return RefusingEndpoint(mount, verdict.code, verdict.reason)


class RefusedSession:
    """What a refused request's handler gets for a session: every receiver
    attached gets the close frame and is finished, as a closed session does."""

    __slots__ = ("close_frame",)

    def __init__(self, close_frame: str) -> None:
        self.close_frame = close_frame

    def attach(self, recv: Any, request: Any = None) -> bool:
        recv.send_frame(self.close_frame)
        recv.finish()
        return False


class RefusingEndpoint:
    """The mount as a refused request's handler sees it (the transports'
    ``Endpoint`` and, for the raw WebSocket, the ``RawSession``'s host)."""

    def __init__(self, mount: Mount, code: int, reason: str) -> None:
        self._mount = mount
        self.code = code
        self.reason = reason
        self.options = mount.options
        self.prefix = mount.prefix
        self.ws_deflate = mount.ws_deflate
        self.messages_in = 0
        self._session = RefusedSession(frames.close_frame(code, reason))

    def __getattr__(self, name: str) -> Any:
        # session_headers, iframe_page, ...: the mount's own.
        return getattr(self._mount, name)

    # -- Endpoint --------------------------------------------------------------------
    def session(self, session_id: str) -> None:
        return None

    def open_session(self, session_id: str) -> RefusedSession:
        return self._session

    def new_ws_session(self) -> RefusedSession:
        return self._session

    def raw_host(self) -> RefusingEndpoint:
        return self

    # -- a RawSession's host: closed as soon as the socket is open ----------------------
    def new_connection(self, session: Any) -> Connection:
        return Connection(session)

    def raw_opened(self, raw: Any) -> None:
        raw.close(self.code, self.reason)

    def opened(self, connection: Any) -> None:
        pass  # never announced

    def raw_closed(self, raw: Any) -> None:
        pass
