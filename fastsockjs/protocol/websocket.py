"""WebSocket codec (sans-I/O): RFC 6455 handshake and messages, the
permessage-deflate extension (RFC 7692), plus the old draft-76 ("hixie-76")
handshake and framing that HAProxy-era clients use.

Frame parsing and masking live in the ``frames`` kernels; this module owns the
state across frames: fragmentation, UTF-8 validation, message size, control
frames, compression and the closing handshake.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from fastsockjs import frames
from fastsockjs.options import WebSocketCompression
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

    Raises HttpError(400) with the reason sockjs-node gives, or 426 for a
    ``Sec-WebSocket-Version`` other than 13.
    """
    h = request.headers
    if h.get("upgrade", "").lower() != "websocket" or not request.upgrade:
        raise HttpError(400, 'Can "Upgrade" only to "WebSocket".')
    if "upgrade" not in _tokens(h.get("connection", "")):
        raise HttpError(400, '"Connection" must be "Upgrade".')
    if "sec-websocket-key1" in h and "sec-websocket-key2" in h:
        return "hixie76"
    version = h.get("sec-websocket-version")
    if version != "13":
        # RFC 6455 4.4: a version we do not speak gets 426 and the one we do.
        # No version at all (nor draft-76 keys) is a malformed handshake: 400.
        raise HttpError(
            400 if version is None else 426,
            "Only supported WebSocket protocol is RFC 6455.",
            [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
        )
    key = h.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise HttpError(400, "Invalid Sec-WebSocket-Key.") from None
    return "rfc6455"


def handshake_response(request: Request) -> bytes:
    """The 101 answer; carries the permessage-deflate response when the
    transport agreed to one (``request.ws_deflate``)."""
    headers: Headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(request.headers["sec-websocket-key"])),
    ]
    if request.ws_deflate is not None:
        headers.append(("Sec-WebSocket-Extensions", request.ws_deflate.response))
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


def _utf8(message: str) -> bytes:
    try:
        return message.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates have no UTF-8 form: pair what pairs up and make the
        # rest U+FFFD, as a JavaScript sender's UTF-8 encoder does.
        return (
            message.encode("utf-16-le", "surrogatepass")
            .decode("utf-16-le", "replace")
            .encode("utf-8")
        )


class Codec:
    """RFC 6455, server side: bytes in, events out; frames out as bytes."""

    __slots__ = ("buf", "max_size", "_frag_op", "_frag", "_frag_size", "_utf8", "failed")

    #: Codecs with equal keys build the same bytes for the same message, so a
    #: broadcast can build a frame once and send it on all of them (None: never).
    frame_key: Any = "rfc6455"
    #: Whether frames may carry RSV1 (permessage-deflate negotiated).
    _rsv1 = False

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
        parsed, pos, error = frames.parse_frames(src, 0, self.max_size, True, self._rsv1)
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
        return frames.build_frame(OP_TEXT, _utf8(message))

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


# -- permessage-deflate (RFC 7692) ---------------------------------------------------

OP_RSV1 = 0x40  # added to the opcode of a frame with RSV1 set (see frames.parse_frames)
_TAIL = b"\x00\x00\xff\xff"  # the empty stored block every message ends with (7.2.1)
_PARAM_BITS = re.compile(r"[1-9][0-9]?")
_EXTENSION_TOKENS = re.compile(
    r"""\s*(?:([!#$%&'*+\-.^_`|~0-9A-Za-z]+)|"((?:[^"\\]|\\.)*)"|([,;=]))"""
)


def parse_extensions(value: str) -> list[tuple[str, list[tuple[str, str | None]]]] | None:
    """``Sec-WebSocket-Extensions`` (RFC 6455 9.1) as ``[(name, [(param, value)])]``
    in the client's order, names and params lower-cased; None if malformed."""
    out: list[tuple[str, list[tuple[str, str | None]]]] = []
    pos = 0
    # States: expecting an extension name, a param name, "=" or ";" or ",",
    # a param value.
    state = "ext"
    params: list[tuple[str, str | None]] = []
    while True:
        m = _EXTENSION_TOKENS.match(value, pos)
        if m is None:
            if value[pos:].strip():
                return None
            break
        pos = m.end()
        token, quoted, sep = m.groups()
        if state == "ext":
            if token is None:
                if sep == ",":  # empty list elements are allowed (RFC 7230 7)
                    continue
                return None
            params = []
            out.append((token.lower(), params))
            state = "after"
        elif state == "param":
            if token is None:
                return None
            params.append((token.lower(), None))
            state = "after_param"
        elif state == "value":
            if sep is not None:
                return None
            text = token if token is not None else re.sub(r"\\(.)", r"\1", quoted)
            params[-1] = (params[-1][0], text)
            state = "after"
        else:  # "after" / "after_param": a separator
            if sep == ";":
                state = "param"
            elif sep == ",":
                state = "ext"
            elif sep == "=" and state == "after_param":
                state = "value"
            else:
                return None
    if state in ("param", "value") or not out:
        return None
    return out


class SharedDeflater:
    """One compressor for every session whose messages are compressed on their
    own (no context takeover) with one window size: a full flush after each
    message resets the LZ77 state, so each output inflates by itself."""

    __slots__ = ("_zobj",)

    def __init__(self, window_bits: int, level: int, mem_level: int) -> None:
        self._zobj = zlib.compressobj(level, zlib.DEFLATED, -window_bits, mem_level)

    def compress(self, data: bytes) -> bytes:
        z = self._zobj
        out = z.compress(data) + z.flush(zlib.Z_FULL_FLUSH)
        return out[:-4]  # minus _TAIL


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What one connection agreed to (RFC 7692 7.1)."""

    #: The ``Sec-WebSocket-Extensions`` value of the 101 answer.
    response: str
    #: Window we compress with; 0: we send everything uncompressed (the client
    #: asked for 8 bits, which zlib cannot compress raw deflate with).
    server_window_bits: int
    server_no_context_takeover: bool
    #: Window the client compresses with (what we inflate with).
    client_window_bits: int
    client_no_context_takeover: bool
    level: int
    mem_level: int
    min_size: int
    shared: SharedDeflater | None = field(default=None, compare=False)


class PerMessageDeflate:
    """permessage-deflate for one mounted Server: negotiates offers and owns
    the compressors that sessions without context takeover share."""

    __slots__ = ("config", "_shared")

    def __init__(self, config: WebSocketCompression) -> None:
        self.config = config
        self._shared: dict[int, SharedDeflater] = {}

    def negotiate(self, header: str) -> DeflateParams | None:
        """Accept the first acceptable ``permessage-deflate`` offer of a
        ``Sec-WebSocket-Extensions`` header; None: go on uncompressed."""
        offers = parse_extensions(header)
        if offers is None:
            return None
        for name, params in offers:
            if name == "permessage-deflate":
                accepted = self._accept(params)
                if accepted is not None:
                    return accepted
        return None

    def _accept(self, params: list[tuple[str, str | None]]) -> DeflateParams | None:
        # RFC 7692 7: decline an offer with an unknown or repeated parameter,
        # a parameter with an invalid value, or a configuration we do not support.
        cfg = self.config
        seen: dict[str, str | None] = {}
        for pname, pvalue in params:
            if pname in seen:
                return None
            seen[pname] = pvalue
            if pname in ("server_no_context_takeover", "client_no_context_takeover"):
                if pvalue is not None:
                    return None
            elif pname == "server_max_window_bits":
                if pvalue is None or _window_bits(pvalue) is None:
                    return None
            elif pname == "client_max_window_bits":
                if pvalue is not None and _window_bits(pvalue) is None:
                    return None
            else:
                return None
        parts = ["permessage-deflate"]
        # 7.1.1.1: we may always say we will not take over our context.
        server_nct = "server_no_context_takeover" in seen or cfg.server_no_context_takeover
        if server_nct:
            parts.append("server_no_context_takeover")
        # 7.1.1.2: we may ask the client not to; an offer with the parameter is
        # the client's word that it will not anyway.
        client_nct = "client_no_context_takeover" in seen or cfg.client_no_context_takeover
        if client_nct:
            parts.append("client_no_context_takeover")
        # 7.1.2.1: a window the client asks us to stay within; we may always
        # announce a smaller one of our own.
        asked = seen.get("server_max_window_bits")
        server_bits = min(cfg.server_max_window_bits, _window_bits(asked) or 15)
        if asked is not None or server_bits < 15:
            parts.append(f"server_max_window_bits={server_bits}")
        # 7.1.2.2: only an offer with client_max_window_bits lets us limit the
        # client's window; without it the client may use 15 bits.
        if "client_max_window_bits" in seen:
            offered = _window_bits(seen["client_max_window_bits"]) or 15
            client_bits = min(cfg.client_max_window_bits, offered)
            if client_bits < 15:
                parts.append(f"client_max_window_bits={client_bits}")
        elif cfg.client_max_window_bits < 15:
            return None
        else:
            client_bits = 15
        if server_bits == 8:
            server_bits = 0
        shared = None
        if server_nct and server_bits:
            shared = self._shared.get(server_bits)
            if shared is None:
                shared = SharedDeflater(server_bits, cfg.level, cfg.mem_level)
                self._shared[server_bits] = shared
        return DeflateParams(
            response="; ".join(parts),
            server_window_bits=server_bits,
            server_no_context_takeover=server_nct,
            client_window_bits=client_bits,
            client_no_context_takeover=client_nct,
            level=cfg.level,
            mem_level=cfg.mem_level,
            min_size=cfg.min_size,
            shared=shared,
        )


def _window_bits(value: str | None) -> int | None:
    """An RFC 7692 window size: 8..15 in decimal without leading zeros."""
    if value is None or not _PARAM_BITS.fullmatch(value):
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


class DeflateCodec(Codec):
    """RFC 6455 with permessage-deflate: RSV1 marks a compressed message on
    its first frame; continuation and control frames never carry it.

    Inflating is incremental and bounded: no message inflates past
    ``max_size`` (1009 as soon as it would), whatever its compressed size.
    """

    __slots__ = ("params", "frame_key", "_deflater", "_inflater", "_inflating")

    _rsv1 = True

    def __init__(self, max_size: int, params: DeflateParams) -> None:
        super().__init__(max_size)
        self.params = params
        # Sessions sharing a compressor build identical frames; a session with
        # its own compression context shares nothing.
        if not params.server_window_bits:
            self.frame_key = Codec.frame_key
        else:
            self.frame_key = params.shared
        self._deflater: Any = None
        self._inflater: Any = None
        self._inflating = False

    # -- receiving ------------------------------------------------------------------
    def _frame(self, fin: bool, opcode: int, payload: bytes) -> tuple[int, Any] | None:
        if opcode & OP_RSV1:
            opcode &= 0x0F
            if opcode != OP_TEXT and opcode != OP_BINARY:
                return FAIL, (CLOSE_PROTOCOL_ERROR, "RSV1 set on a control or continuation frame")
            if self._frag_op:
                return FAIL, (CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
            self._inflating = True
            self._frag_size = 0
        elif not self._inflating or opcode != OP_CONT:
            # An uncompressed message, or a control frame (between fragments too).
            return Codec._frame(self, fin, opcode, payload)
        data = self._inflate(payload, fin)
        if isinstance(data, tuple):
            return data  # (the FAIL event)
        if opcode != OP_CONT:
            if fin:
                self._inflating = False
                return self._message(opcode, data)
            self._frag_op = opcode
            self._frag = [data]
            if opcode == OP_TEXT:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
                return self._check_utf8(data, False)
            return None
        self._frag.append(data)
        if self._frag_op == OP_TEXT:
            bad = self._check_utf8(data, fin)
            if bad is not None:
                return bad
        if not fin:
            return None
        op, whole = self._frag_op, b"".join(self._frag)
        self._frag_op, self._frag, self._frag_size, self._utf8 = 0, [], 0, None
        self._inflating = False
        return self._message(op, whole)

    @staticmethod
    def _message(opcode: int, data: bytes) -> tuple[int, Any]:
        if opcode == OP_TEXT:
            try:
                return TEXT, data.decode("utf-8")
            except UnicodeDecodeError:
                return FAIL, (CLOSE_INVALID_DATA, "invalid UTF-8")
        return BINARY, data

    def _inflate(self, payload: bytes, fin: bool) -> bytes | tuple[int, Any]:
        """Inflate one frame's payload, never past the message's size budget."""
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self.params.client_window_bits)
        budget = self.max_size - self._frag_size
        try:
            # At most budget + 1 bytes out: one more than allowed is enough to
            # know the message is too big, and zlib stops there.
            data: bytes = inflater.decompress(payload, budget + 1)
            if fin and len(data) <= budget:
                data += inflater.decompress(_TAIL, budget + 1 - len(data))
        except zlib.error:
            return FAIL, (CLOSE_INVALID_DATA, "invalid compressed data")
        if len(data) > budget:
            return FAIL, (CLOSE_TOO_BIG, "message too big")
        self._frag_size += len(data)
        # A message that ended its stream (BFINAL) starts the next one afresh.
        if fin and (self.params.client_no_context_takeover or inflater.eof):
            self._inflater = None
        return data

    # -- sending --------------------------------------------------------------------
    def text(self, message: str) -> bytes:  # type: ignore[override]
        return self._data_frame(OP_TEXT, _utf8(message))

    def binary(self, message: bytes) -> bytes:  # type: ignore[override]
        return self._data_frame(OP_BINARY, message)

    def _data_frame(self, opcode: int, data: bytes) -> bytes:
        params = self.params
        if len(data) < params.min_size or not params.server_window_bits:
            return frames.build_frame(opcode, data)
        shared = params.shared
        if shared is not None:
            payload = shared.compress(data)
            if len(payload) >= len(data):
                # Nothing gained; without context takeover nothing is lost either.
                return frames.build_frame(opcode, data)
        else:
            z = self._deflater
            if z is None:
                z = self._deflater = zlib.compressobj(
                    params.level, zlib.DEFLATED, -params.server_window_bits, params.mem_level
                )
            payload = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
            payload = payload[:-4]
        return frames.build_frame(opcode, payload, True, None, True)


class Hixie76Codec:
    """Draft-76 framing: ``\\x00`` UTF-8 text ``\\xff``; ``\\xff\\x00`` closes."""

    __slots__ = ("buf", "max_size", "failed")

    frame_key: Any = "hixie76"

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
