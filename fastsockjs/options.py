"""Server options: one frozen dataclass, validated at construction.

Names follow sockjs-node 0.3.24 where they exist; durations are seconds as
floats (sockjs-node uses milliseconds), so values above an hour are refused
as a probable unit mistake.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatchcase
from typing import Any

#: sockjs-client version whose iframe page we serve; the iframe refuses another version.
SOCKJS_CLIENT_VERSION = "1.6.1"
DEFAULT_SOCKJS_URL = (
    f"https://cdn.jsdelivr.net/npm/sockjs-client@{SOCKJS_CLIENT_VERSION}/dist/sockjs.min.js"
)

#: Transport names as sockjs-node and sockjs-client spell them.
TRANSPORTS = (
    "websocket",
    "websocket-raw",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "htmlfile",
    "jsonp-polling",
)

_MAX_DELAY = 3600.0
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*")

#: ``jsessionid`` as a callable: gets the request's cookies, returns the
#: Set-Cookie value to send (or None for none).
JSessionIdHook = Callable[[Mapping[str, str]], "str | None"]


class OptionsError(ValueError):
    """An option has an invalid value."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """What an ``authorize`` hook returns to refuse a request.

    Either an HTTP ``status`` (401, 403, ...; ``reason`` is the body), or a
    SockJS close ``code`` (4000..4999 for the application's own) with
    ``reason``: the client then gets ``c[code,"reason"]`` on whatever
    transport it opened with, and its ``onclose`` sees both. Neither given:
    403.
    """

    status: int | None = None
    code: int | None = None
    reason: str = "Forbidden"

    def __post_init__(self) -> None:
        if self.status is not None and self.code is not None:
            raise OptionsError("Refuse takes an HTTP status or a close code, not both")
        if self.status is not None and not (
            isinstance(self.status, int) and 400 <= self.status <= 599
        ):
            raise OptionsError(f"Refuse status must be an HTTP error status, not {self.status!r}")
        if self.code is not None and not (
            isinstance(self.code, int) and (self.code == 1000 or 3000 <= self.code <= 4999)
        ):
            raise OptionsError(f"Refuse code must be 1000 or 3000..4999, not {self.code!r}")
        if not isinstance(self.reason, str):
            raise OptionsError("Refuse reason must be a string")


#: ``authorize(request)``: None / True to let a new session open, False or a
#: :class:`Refuse` to refuse it, a dict to let it open with that data in its
#: ``Connection.state``; or an awaitable of one of these.
AuthorizeHook = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class WebSocketCompression:
    """permessage-deflate (RFC 7692) settings for ``websocket_compression``.

    The defaults keep an idle session free of zlib state: with both
    ``*_no_context_takeover`` on, each message is compressed and inflated on
    its own, so nothing outlives a message, and one compressor per process
    serves every session (a broadcast is compressed once). Turning
    ``server_no_context_takeover`` off compresses repetitive small messages
    better, at ``2**(server_max_window_bits + 2) + 2**(mem_level + 9)`` bytes
    of deflate state per session; ``client_no_context_takeover`` off keeps
    ``2**client_max_window_bits`` bytes (plus ~7 KiB) of inflate state.
    """

    #: zlib compression level (1 fastest .. 9 smallest).
    level: int = 6
    #: zlib memLevel (1..9): the size of the compressor's hash tables.
    mem_level: int = 5
    #: The largest LZ77 window we compress with, as 2**bits bytes (9..15;
    #: zlib cannot compress raw deflate with 8). A client may ask for less.
    server_max_window_bits: int = 12
    #: The largest window we let the client compress with (9..15). Below 15,
    #: an offer that cannot be limited (no ``client_max_window_bits``) is declined.
    client_max_window_bits: int = 15
    #: Compress every message on its own (and share the work across sessions).
    server_no_context_takeover: bool = True
    #: Ask the client to compress every message on its own too.
    client_no_context_takeover: bool = True
    #: Messages shorter than this many bytes are sent uncompressed.
    min_size: int = 64

    def __post_init__(self) -> None:
        for name, low, high in (
            ("level", 0, 9),
            ("mem_level", 1, 9),
            ("server_max_window_bits", 9, 15),
            ("client_max_window_bits", 9, 15),
            ("min_size", 0, 1 << 62),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise OptionsError(f"{name} must be an integer in {low}..{high}, not {value!r}")
        for name in ("server_no_context_takeover", "client_no_context_takeover"):
            if not isinstance(getattr(self, name), bool):
                raise OptionsError(f"{name} must be True or False, not {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Options:
    prefix: str = ""
    sockjs_url: str = DEFAULT_SOCKJS_URL
    response_limit: int = 128 * 1024
    websocket: bool = True
    disabled_transports: frozenset[str] = field(default_factory=frozenset)
    jsessionid: bool | JSessionIdHook = False
    heartbeat_delay: float = 25.0
    disconnect_delay: float = 5.0
    disable_cors: bool = False
    max_message_size: int = 1024 * 1024
    #: Origins allowed to use this server from a browser (exact, or fnmatch
    #: patterns such as ``https://*.example.com``); None allows any.
    allowed_origins: tuple[str, ...] | None = None
    #: Live sessions beyond which new ones are refused with 503 (None: no cap).
    max_sessions: int | None = None
    #: Per-session bound on what waits to be sent (queued plus socket buffer).
    max_outbox_bytes: int = 8 * 1024 * 1024
    max_outbox_messages: int = 100_000
    #: What happens when a slow client's outbox is full: ``"close"`` the session
    #: with 1013 "Outgoing queue full", or ``"drop"`` the new message
    #: (``write()`` returns False and the drop is counted).
    slow_client_policy: str = "close"
    #: WebSocket keep-alive: ping this often; close 1011 if no pong within
    #: ``ws_ping_timeout`` of the ping actually leaving. None disables.
    ws_ping_interval: float | None = 25.0
    ws_ping_timeout: float = 20.0
    #: permessage-deflate on the ``websocket`` and raw ``/websocket`` endpoints:
    #: False (off), True (the defaults of WebSocketCompression) or a
    #: WebSocketCompression. Stored as None or a WebSocketCompression.
    websocket_compression: WebSocketCompression | bool | None = None
    #: Called with the request before a session is created (see AuthorizeHook).
    authorize: AuthorizeHook | None = None
    logger: logging.Logger | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or (
            self.prefix and (not _PREFIX_RE.fullmatch(self.prefix) or self.prefix.endswith("/"))
        ):
            raise OptionsError(
                f"prefix must be '' or like '/echo' (no trailing slash), not {self.prefix!r}"
            )
        if not isinstance(self.sockjs_url, str) or not self.sockjs_url:
            raise OptionsError("sockjs_url must be a non-empty URL string")
        if any(c in self.sockjs_url for c in '"<>\r\n'):
            raise OptionsError("sockjs_url must not contain quotes, angle brackets or newlines")
        for name in ("heartbeat_delay", "disconnect_delay"):
            _check_delay(name, getattr(self, name))
        for name in ("websocket", "disable_cors"):
            if not isinstance(getattr(self, name), bool):
                raise OptionsError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.logger is not None and not isinstance(
            self.logger, (logging.Logger, logging.LoggerAdapter)
        ):
            raise OptionsError(f"logger must be a logging.Logger (or adapter), not {self.logger!r}")
        for name in ("response_limit", "max_message_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionsError(f"{name} must be a positive integer (bytes), not {value!r}")
        unknown = set(self.disabled_transports) - set(TRANSPORTS)
        if unknown:
            raise OptionsError(
                f"unknown transports {sorted(unknown)}; known: {', '.join(TRANSPORTS)}"
            )
        if self.authorize is not None and not callable(self.authorize):
            raise OptionsError(f"authorize must be a callable, not {self.authorize!r}")
        if not (isinstance(self.jsessionid, bool) or callable(self.jsessionid)):
            raise OptionsError("jsessionid must be True, False or a callable")
        for name in ("max_outbox_bytes", "max_outbox_messages"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionsError(f"{name} must be a positive integer, not {value!r}")
        if self.max_sessions is not None and (
            isinstance(self.max_sessions, bool)
            or not isinstance(self.max_sessions, int)
            or self.max_sessions < 1
        ):
            raise OptionsError(
                f"max_sessions must be None or a positive integer, not {self.max_sessions!r}"
            )
        if self.slow_client_policy not in ("close", "drop"):
            raise OptionsError(
                f"slow_client_policy must be 'close' or 'drop', not {self.slow_client_policy!r}"
            )
        if self.ws_ping_interval is not None:
            _check_delay("ws_ping_interval", self.ws_ping_interval)
        _check_delay("ws_ping_timeout", self.ws_ping_timeout)
        compression = self.websocket_compression
        if compression is True:
            object.__setattr__(self, "websocket_compression", WebSocketCompression())
        elif compression is False:
            object.__setattr__(self, "websocket_compression", None)
        elif compression is not None and not isinstance(compression, WebSocketCompression):
            raise OptionsError(
                "websocket_compression must be True, False or a WebSocketCompression, "
                f"not {compression!r}"
            )
        if self.allowed_origins is not None and (
            isinstance(self.allowed_origins, str)
            or not all(isinstance(o, str) and o for o in self.allowed_origins)
        ):
            raise OptionsError("allowed_origins must be a list of origin strings")

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a request with this Origin header may be served (none: yes)."""
        if origin is None or self.allowed_origins is None:
            return True
        return any(o == origin or fnmatchcase(origin, o) for o in self.allowed_origins)

    def enabled(self, transport: str) -> bool:
        if transport in self.disabled_transports:
            return False
        if transport in ("websocket", "websocket-raw"):
            return self.websocket
        return True

    @property
    def ws_compression(self) -> WebSocketCompression | None:
        """``websocket_compression`` as set up: None when off."""
        value = self.websocket_compression
        return value if isinstance(value, WebSocketCompression) else None

    @property
    def websocket_enabled(self) -> bool:
        """What /info reports: the SockJS-framed websocket transport is on."""
        return self.enabled("websocket")


def _check_delay(name: str, value: object) -> None:
    # (NaN fails every comparison: without isfinite() it would pass, and a NaN
    # deadline is never armed, so sessions would never expire.)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise OptionsError(f"{name} must be a positive number of seconds, not {value!r}")
    if value > _MAX_DELAY:
        raise OptionsError(
            f"{name}={value!r} is over an hour: fastsockjs takes seconds, "
            "not sockjs-node's milliseconds"
        )


_NAMES = frozenset(f.name for f in fields(Options) if f.init)
_ALIASES = {"log": "logger", "disabled": "disabled_transports"}


def make_options(base: Options | None = None, **kwargs: Any) -> Options:
    """Options from keyword arguments (sockjs-node spellings accepted)."""
    clean: dict[str, Any] = {}
    for key, value in kwargs.items():
        key = _ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if key not in _NAMES:
            raise OptionsError(f"unknown option {key!r}; known: {', '.join(sorted(_NAMES))}")
        if key == "disabled_transports":
            if isinstance(value, str):
                value = [value]
            value = frozenset(_as_iter(value))
        elif key == "allowed_origins" and value is not None:
            if isinstance(value, str):
                value = [value]
            value = tuple(_as_iter(value))
        clean[key] = value
    return replace(base, **clean) if base is not None else Options(**clean)


def _as_iter(value: Any) -> Iterable[str]:
    if not isinstance(value, Iterable):
        raise OptionsError("disabled_transports must be a list of transport names")
    return value
