"""WebSocket codec (sans-I/O): RFC 6455 handshake and messages, plus the old
draft-76 ("hixie-76") handshake and framing that HAProxy-era clients use.

Frame parsing and masking live in the ``frames`` kernels; this module owns the
state across frames: fragmentation, UTF-8 validation, message size, control
frames and the closing handshake.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import struct
from typing import Any

from fastsockjs import frames
from fastsockjs.protocol.http import Headers, HttpError, Request

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Events produced by the codec: (kind, payload).
TEXT, BINARY, PING, PONG, CLOSE, FAIL = range(6)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode()


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",")}


def check_handshake(request: Request) -> str:
    """Validate an upgrade request; returns ``"rfc6455"`` or ``"hixie76"``.

    Raises HttpError(400) with the reason sockjs-node gives.
    """
    h = request.headers
    if h.get("upgrade", "").lower() != "websocket" or not request.upgrade:
        raise HttpError(400, 'Can "Upgrade" only to "WebSocket".')
    if "upgrade" not in _tokens(h.get("connection", "")):
        raise HttpError(400, '"Connection" must be "Upgrade".')
    if "sec-websocket-key1" in h and "sec-websocket-key2" in h:
        return "hixie76"
    version = h.get("sec-websocket-version", "")
    if version not in ("13", "8"):
        raise HttpError(
            400,
            "Only supported WebSocket protocol is RFC 6455.",
            [("Sec-WebSocket-Version", "13")],
        )
    key = h.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise HttpError(400, "Invalid Sec-WebSocket-Key.") from None
    return "rfc6455"


def handshake_response(request: Request) -> bytes:
    headers: Headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(request.headers["sec-websocket-key"])),
    ]
    lines = ["HTTP/1.1 101 Switching Protocols"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def hixie76_response(request: Request, scheme: str = "ws") -> bytes:
    """Response head for draft-76, written before the 8-byte nonce arrives."""
    h = request.headers
    location = f"{scheme}://{h.get('host', '')}{request.url}"
    lines = [
        "HTTP/1.1 101 WebSocket Protocol Handshake",
        "Upgrade: WebSocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Origin: {h.get('origin', 'null')}",
        f"Sec-WebSocket-Location: {location}",
        "\r\n",
    ]
    return "\r\n".join(lines).encode("latin-1")


def hixie76_answer(request: Request, nonce: bytes) -> bytes:
    """MD5 challenge answer of draft-76 (section 5.2)."""

    def number(key: str) -> int:
        digits = int("".join(c for c in key if c.isdigit()) or "0")
        spaces = key.count(" ")
        if spaces == 0 or digits % spaces:
            raise ValueError("invalid Sec-WebSocket-Key")
        return digits // spaces

    h = request.headers
    n1 = number(h["sec-websocket-key1"])
    n2 = number(h["sec-websocket-key2"])
    return hashlib.md5(struct.pack(">II", n1 & 0xFFFFFFFF, n2 & 0xFFFFFFFF) + nonce).digest()


_VALID_CLOSE = frozenset(range(1000, 1012)) - {1004, 1005, 1006}


def close_payload(code: int, reason: str = "") -> bytes:
    data = code.to_bytes(2, "big") + reason.encode("utf-8")
    return data[:125]


def parse_close(payload: bytes) -> tuple[int, str] | None:
    """(code, reason) of a received close frame; None if it is invalid."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        return None
    code = int.from_bytes(payload[:2], "big")
    if not (code in _VALID_CLOSE or 3000 <= code <= 4999):
        return None
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return None


class Codec:
    """RFC 6455, server side: bytes in, events out; frames out as bytes."""

    __slots__ = ("buf", "max_size", "_frag_op", "_frag", "_frag_size", "_utf8", "failed")

    def __init__(self, max_size: int) -> None:
        self.buf = bytearray()
        self.max_size = max_size
        self._frag_op = 0
        self._frag: list[bytes] = []
        self._frag_size = 0
        self._utf8: Any = None
        self.failed = False

    def receive_data(self, data: bytes) -> list[tuple[int, Any]]:
        """Feed bytes; returns events. After a FAIL event nothing more is parsed."""
        if self.failed:
            return []
        buf = self.buf
        if buf:
            buf += data
            src: bytes | bytearray = buf
        else:
            src = data
        parsed, pos, error = frames.parse_frames(src, 0, self.max_size)
        if src is buf:
            del buf[:pos]
        elif pos < len(data):
            buf += data[pos:]
        events: list[tuple[int, Any]] = []
        for fin, opcode, payload in parsed:
            if opcode == OP_TEXT and fin and not self._frag_op:
                # The common case, inline: a whole text message in one frame.
                try:
                    events.append((TEXT, payload.decode("utf-8")))
                    continue
                except UnicodeDecodeError:
                    ev: tuple[int, Any] | None = (FAIL, (CLOSE_INVALID_DATA, "invalid UTF-8"))
            else:
                ev = self._frame(fin, opcode, payload)
            if ev is not None:
                events.append(ev)
                if ev[0] == FAIL or ev[0] == CLOSE:
                    self.failed = ev[0] == FAIL
                    self.buf = bytearray()
                    return events
        if error is not None:
            self.failed = True
            events.append((FAIL, error))
        return events

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> tuple[int, Any] | None:
        if opcode in (OP_TEXT, OP_BINARY):
            if self._frag_op:
                return FAIL, (CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
            if fin:
                if opcode == OP_TEXT:
                    try:
                        return TEXT, payload.decode("utf-8")
                    except UnicodeDecodeError:
                        return FAIL, (CLOSE_INVALID_DATA, "invalid UTF-8")
                return BINARY, payload
            self._frag_op = opcode
            self._frag = [payload]
            self._frag_size = len(payload)
            if opcode == OP_TEXT:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
                return self._check_utf8(payload, False)
            return None
        if opcode == OP_CONT:
            if not self._frag_op:
                return FAIL, (CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
            self._frag_size += len(payload)
            if self._frag_size > self.max_size:
                return FAIL, (CLOSE_TOO_BIG, "message too big")
            self._frag.append(payload)
            if self._frag_op == OP_TEXT:
                bad = self._check_utf8(payload, fin)
                if bad is not None:
                    return bad
            if not fin:
                return None
            op, data = self._frag_op, b"".join(self._frag)
            self._frag_op, self._frag, self._frag_size, self._utf8 = 0, [], 0, None
            if op == OP_TEXT:
                return TEXT, data.decode("utf-8")
            return BINARY, data
        if opcode == OP_PING:
            return PING, payload
        if opcode == OP_PONG:
            return PONG, payload
        # OP_CLOSE
        parsed = parse_close(payload)
        if parsed is None:
            return FAIL, (CLOSE_PROTOCOL_ERROR, "invalid close frame")
        return CLOSE, parsed

    def _check_utf8(self, payload: bytes, final: bool) -> tuple[int, Any] | None:
        try:
            self._utf8.decode(payload, final)
        except UnicodeDecodeError:
            return FAIL, (CLOSE_INVALID_DATA, "invalid UTF-8")
        return None

    @staticmethod
    def text(message: str) -> bytes:
        try:
            data = message.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates have no UTF-8 form: pair what pairs up and make the
            # rest U+FFFD, as a JavaScript sender's UTF-8 encoder does.
            data = (
                message.encode("utf-16-le", "surrogatepass")
                .decode("utf-16-le", "replace")
                .encode("utf-8")
            )
        return frames.build_frame(OP_TEXT, data)

    @staticmethod
    def binary(message: bytes) -> bytes:
        return frames.build_frame(OP_BINARY, message)

    @staticmethod
    def close(code: int | None = CLOSE_NORMAL, reason: str = "") -> bytes:
        payload = b"" if code is None else close_payload(code, reason)
        return frames.build_frame(OP_CLOSE, payload)

    @staticmethod
    def pong(payload: bytes) -> bytes:
        return frames.build_frame(OP_PONG, payload)

    @staticmethod
    def ping(payload: bytes = b"") -> bytes:
        return frames.build_frame(OP_PING, payload)


class Hixie76Codec:
    """Draft-76 framing: ``\\x00`` UTF-8 text ``\\xff``; ``\\xff\\x00`` closes."""

    __slots__ = ("buf", "max_size", "failed")

    def __init__(self, max_size: int) -> None:
        self.buf = bytearray()
        self.max_size = max_size
        self.failed = False

    def receive_data(self, data: bytes) -> list[tuple[int, Any]]:
        if self.failed:
            return []
        self.buf += data
        events: list[tuple[int, Any]] = []
        buf = self.buf
        while buf:
            if buf[0] == 0x00:
                end = buf.find(b"\xff", 1)
                if end < 0:
                    if len(buf) > self.max_size + 1:
                        self.failed = True
                        events.append((FAIL, (CLOSE_TOO_BIG, "message too big")))
                    break
                try:
                    events.append((TEXT, bytes(buf[1:end]).decode("utf-8")))
                except UnicodeDecodeError:
                    self.failed = True
                    events.append((FAIL, (CLOSE_INVALID_DATA, "invalid UTF-8")))
                    break
                del buf[: end + 1]
            elif buf[0] == 0xFF:
                if len(buf) < 2:
                    break
                events.append((CLOSE, (CLOSE_NORMAL, "")))
                self.failed = True
                break
            else:
                self.failed = True
                events.append((FAIL, (CLOSE_PROTOCOL_ERROR, "invalid frame")))
                break
        return events

    @staticmethod
    def text(message: str) -> bytes:
        return b"\x00" + message.encode("utf-8") + b"\xff"

    @staticmethod
    def binary(message: bytes) -> bytes:
        return b"\x00" + message + b"\xff"

    @staticmethod
    def close(code: int | None = CLOSE_NORMAL, reason: str = "") -> bytes:
        return b"\xff\x00"

    @staticmethod
    def pong(payload: bytes) -> bytes:
        return b""

    @staticmethod
    def ping(payload: bytes = b"") -> bytes:
        return b""
