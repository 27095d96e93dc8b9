"""The application's object for one SockJS session (sockjs-node's SockJSConnection)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from fastsockjs.events import EventEmitter
from fastsockjs.frames import text_or_none
from fastsockjs.protocol.session import ReadyState

_error_log = logging.getLogger("fastsockjs.error")

#: Request headers exposed to the application: sockjs-node's safe list (no cookies).
EXPOSED_HEADERS = (
    "referer",
    "x-client-ip",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-cluster-client-ip",
    "via",
    "x-real-ip",
    "x-forwarded-proto",
    "x-ssl",
    "dnt",
    "host",
    "user-agent",
    "accept-language",
)


class SessionLike(Protocol):
    """What a Connection drives: a SockJS session or a raw WebSocket session."""

    state: ReadyState

    def send(self, message: str) -> bool: ...
    def write_quoted(self, quoted: str, text: str) -> bool: ...
    def close(self, code: int, reason: str) -> bool: ...
    def wait_drained(self) -> Any: ...


_OPEN = ReadyState.OPEN


class Connection(EventEmitter):
    """One client session, whatever the transport.

    Events: ``'data'`` (alias ``'message'``) with each message received, and
    ``'close'`` exactly once when the session has ended.
    """

    __slots__ = (
        "_session",
        "id",
        "remote_address",
        "remote_port",
        "headers",
        "url",
        "pathname",
        "prefix",
        "protocol",
        "_state",
        "__weakref__",
    )

    _aliases = {"message": "data", "open": "connection", "end": "close"}

    def __init__(self, session: SessionLike, spawn: Callable[[Any], None] | None = None) -> None:
        super().__init__(spawn)
        self._session = session
        self.id: str = str(uuid.uuid4())
        self.remote_address: str | None = None
        self.remote_port: int | None = None
        self.headers: dict[str, str] = {}
        self.url: str = ""
        self.pathname: str = ""
        self.prefix: str = ""
        self.protocol: str = ""
        self._state: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.protocol} {self.ready_state.name}>"

    @property
    def state(self) -> dict[str, Any]:
        """The application's own data for this connection (a user id after
        authentication, ...). Starts empty, or as a copy of the dict the
        Server's ``authorize`` hook returned; made on first use."""
        state = self._state
        if state is None:
            state = self._state = {}
        return state

    @property
    def ready_state(self) -> ReadyState:
        """CONNECTING, OPEN, CLOSING or CLOSED (0..3, as in the browser API)."""
        return self._session.state

    @property
    def readable(self) -> bool:
        return self._session.state is _OPEN

    writable = readable

    def write(self, message: Any) -> bool:
        """Queue ``message``; True when queued, False once the session is not open.

        Never raises, so a broadcast loop cannot race a close. A non-string is
        sent as its JSON text.
        """
        if type(message) is not str:
            message = text_or_none(message, "write", _error_log)
            if message is None:
                return False
        return self._session.send(message)

    send = write

    def write_quoted(self, quoted: str, text: str) -> bool:
        """Write ``text`` whose SockJS quoting ``quoted`` is already known (a
        broadcast quotes once for every connection)."""
        return self._session.write_quoted(quoted, text)

    def close(self, code: int = 1000, reason: str = "Normal closure") -> bool:
        """Close the session with a SockJS close frame; False if it was not open."""
        return self._session.close(code, reason)

    def end(self, message: Any = None) -> None:
        if message is not None:
            self.write(message)
        self.close()

    async def drain(self) -> None:
        """Wait until everything written so far has been handed to the network."""
        await self._session.wait_drained()

    def fill(self, request: Any, protocol: str, prefix: str) -> None:
        """Take the request facts of the request that (re)attached the session."""
        # The client's address: the peer's, or what a trusted proxy said it is.
        self.remote_address, self.remote_port = request.remote
        self.url = request.url
        self.pathname = request.path
        self.prefix = prefix
        self.protocol = protocol
        if not self.headers:
            # Taken from the first request of the session: later polls carry
            # the same browser's headers, and this runs on every poll.
            hdrs = request.headers
            self.headers = {k: hdrs[k] for k in EXPOSED_HEADERS if hdrs.get(k)}
        auth = request.auth
        if auth is not None:
            self.state.update(auth)

