"""The client's exceptions: one base, and a closed-session family that carries
the SockJS close code and reason."""

from __future__ import annotations


class SockJSError(Exception):
    """Base class of every error this client raises."""


class ConnectError(SockJSError):
    """``connect()`` could not open a session: ``/info`` failed, or every
    transport tried failed; ``errors`` maps each transport tried to its error."""

    def __init__(self, message: str, errors: dict[str, BaseException] | None = None) -> None:
        self.errors = dict(errors or {})
        if self.errors:
            message += ": " + "; ".join(f"{t}: {e!r}" for t, e in self.errors.items())
        super().__init__(message)


class ConnectionClosed(SockJSError):
    """The session is closed: by the server's close frame, by ``close()``, or
    because it was lost. ``code`` and ``reason`` are those of the close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"SockJS session closed: {self.code} {self.reason!r}"


class ConnectionLost(ConnectionClosed):
    """Closed without a close frame (code 1006, as sockjs-client reports it): the
    network failed, a response ended early (early EOF), the server answered 404
    for the session, or it opened the session a second time (it lost it)."""

    def __str__(self) -> str:
        return f"SockJS session lost: {self.reason}"


class ProtocolError(ConnectionClosed):
    """The server broke the protocol (code 1002): a malformed frame, a wrong
    content type or status, an invalid WebSocket handshake or frame."""

    def __str__(self) -> str:
        return f"SockJS protocol error: {self.reason}"


CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_LOST = 1006
