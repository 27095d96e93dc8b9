"""The client's sans-I/O core: SockJS ids and URLs, frame decoding, the line
splitter for xhr bodies and the body of a batched ``xhr_send``. No asyncio here.

Frames (https://sockjs.github.io/sockjs-protocol/sockjs-protocol-0.3.3.html):
``o`` open, ``h`` heartbeat, ``a[...]`` messages, ``m"..."`` one message (old
servers), ``c[code,"reason"]`` close.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from fastsockjs import frames
from fastsockjs.client.errors import CLOSE_PROTOCOL_ERROR, ProtocolError

#: sockjs-client's alphabet for session ids (lib/utils/random.js): 32 characters.
SESSION_ID_CHARS = "abcdefghijklmnopqrstuvwxyz012345"

TRANSPORTS = ("websocket", "xhr-streaming", "xhr-polling")

# Frame kinds.
OPEN, HEARTBEAT, MESSAGES, CLOSE = "o", "h", "a", "c"


def server_id() -> str:
    """Three decimal digits, 000-999, as sockjs-client's ``random.numberString(1000)``."""
    return "%03d" % secrets.randbelow(1000)


def session_id(length: int = 8) -> str:
    """Eight characters of sockjs-client's alphabet, from a cryptographic source."""
    return "".join(SESSION_ID_CHARS[b % 32] for b in secrets.token_bytes(length))


@dataclass(frozen=True, slots=True)
class Base:
    """A service URL split into what the transports need."""

    scheme: str  # "http" or "https"
    host: str
    port: int
    path: str  # the prefix, without a trailing slash, e.g. "/echo"

    @classmethod
    def parse(cls, url: str) -> Base:
        parts = urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} (http, https, ws, wss)")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"a SockJS URL has no query or fragment: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        return cls(scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url(self, path: str = "", websocket: bool = False) -> str:
        scheme = ("wss" if self.tls else "ws") if websocket else self.scheme
        return urlunsplit((scheme, self.host_header, self.path + path, "", ""))

    def session_path(self, server: str, session: str, kind: str) -> str:
        return f"{self.path}/{server}/{session}/{kind}"


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str  # OPEN, HEARTBEAT, MESSAGES or CLOSE
    messages: tuple[str, ...] = ()
    code: int = 0
    reason: str = ""


HEARTBEAT_FRAME = Frame(HEARTBEAT)
OPEN_FRAME = Frame(OPEN)


def _bad(what: str, text: str) -> ProtocolError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return ProtocolError(CLOSE_PROTOCOL_ERROR, f"malformed frame ({what}): {shown!r}")


def parse_frame(text: str) -> Frame:
    """One SockJS frame; raises ProtocolError for anything else."""
    if text == "o":
        return OPEN_FRAME
    if text and text.strip("h") == "":
        # "h", or xhr-streaming's prelude of 2048 "h" (sockjs-client reads its first character).
        return HEARTBEAT_FRAME
    kind, payload = text[:1], text[1:]
    if kind == "a":
        if payload[:1] != "[":
            raise _bad("not an array", text)
        try:
            # The project's JSON-array kernel (the one the server decodes with).
            value = frames.decode_ws_message(payload)
        except ValueError:
            raise _bad("invalid JSON", text) from None
        if not all(type(m) is str for m in value):
            raise _bad("not an array of strings", text)
        return Frame(MESSAGES, tuple(value))
    if kind == "m":
        try:
            value = json.loads(payload)
        except ValueError:
            raise _bad("invalid JSON", text) from None
        if not isinstance(value, str):
            raise _bad("not a string", text)
        return Frame(MESSAGES, (value,))
    if kind == "c":
        try:
            value = json.loads(payload)
        except ValueError:
            raise _bad("invalid JSON", text) from None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or type(value[0]) is not int
            or not isinstance(value[1], str)
        ):
            raise _bad("not [code, reason]", text)
        return Frame(CLOSE, code=value[0], reason=value[1])
    raise _bad("unknown type", text)


class LineSplitter:
    """Cuts an xhr body into frames, one per line, across chunk boundaries.

    Lines are split as bytes and decoded whole, so a UTF-8 character cut by a
    chunk boundary is fine. A line longer than ``max_size`` is a ProtocolError.
    """

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int) -> None:
        self._buf = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> list[str]:
        buf = self._buf
        buf += data
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > self.max_size:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"frame over {self.max_size} bytes")
            return []
        whole = bytes(buf[:end])
        del buf[: end + 1]
        try:
            return whole.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "invalid UTF-8 in a frame") from None

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished line are waiting (at the end of a body: a cut frame)."""
        return bool(self._buf)


def encode_messages(messages: Sequence[str]) -> bytes:
    """The body of ``xhr_send`` (or a WebSocket message): a JSON array, quoted as
    sockjs-client quotes (the same escapes SockJS servers use)."""
    # quote() escapes lone surrogates, so the text always has a UTF-8 form.
    return frames.encode_messages(messages)[1:].encode("utf-8")


def quoted_size(message: str) -> int:
    """An upper bound of a message's size in a batch (for batch limits)."""
    return len(message) * 6 + 3
