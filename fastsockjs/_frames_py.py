"""Pure-Python twin of the ``_frames`` kernels (same names, same signatures).

This module is the reference the Cython extension is tested against, and the
fallback when the extension is not built. It is written to be as fast as plain
Python allows (stdlib C helpers, big-int XOR for masking), never slowed down
to flatter the extension.

Kernels:

* SockJS string quoting (JSON plus the extra escapes of sockjs-node's
  ``quote()``) and frame assembly (``a[...]``, ``c[code,"reason"]``).
* Decoding of what a client sends in one WebSocket message.
* RFC 6455 frame parsing, building and (un)masking.
* The bodies of the HTTP transports that wrap each frame: a JS string literal
  (``htmlfile``, ``jsonp``), an event-stream event (``eventsource``), and the
  ``application/x-www-form-urlencoded`` decoding of ``jsonp_send``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from json.encoder import encode_basestring as _encode_basestring
from typing import Any
from urllib.parse import unquote_plus as _unquote_plus

__all__ = [
    "quote",
    "encode_messages",
    "close_frame",
    "decode_ws_message",
    "apply_mask",
    "parse_frames",
    "build_frame",
    "wrap_js_string",
    "event_stream_data",
    "unquote_plus",
    "IMPLEMENTATION",
]

IMPLEMENTATION = "python"

# Characters that JSON leaves alone but browsers mangle in transit (see the
# protocol's "JSON Unicode Encoding" section): zero-width and directional
# marks, line/paragraph separators, invisible operators, specials, plus every
# surrogate. Code points above U+FFFF are written as an escaped surrogate pair,
# as sockjs-node (UTF-16 strings) does, so the output is pure BMP.
_ESCAPABLE = re.compile(
    "[\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff"
    "\ud800-\udfff\U00010000-\U0010ffff]"
)


def _escape(match: re.Match[str]) -> str:
    o = ord(match.group())
    if o > 0xFFFF:
        o -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 | (o >> 10), 0xDC00 | (o & 0x3FF))
    return "\\u%04x" % o


def quote(s: str) -> str:
    """JSON-encode ``s`` as a string literal, with SockJS's extra escapes."""
    q: str = _encode_basestring(s)
    if q.isascii():
        return q
    return _ESCAPABLE.sub(_escape, q)


def encode_messages(messages: Sequence[str]) -> str:
    """The ``a[...]`` frame carrying ``messages`` in order."""
    return "a[" + ",".join([quote(m) for m in messages]) + "]"


def close_frame(code: int, reason: str) -> str:
    """The ``c[code,"reason"]`` frame."""
    return "c[" + str(int(code)) + "," + quote(reason) + "]"


def _reject_constant(name: str) -> Any:
    # JavaScript's JSON.parse has no NaN / Infinity: neither do we.
    raise ValueError("invalid JSON constant " + name)


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_decode = _decoder.decode
# json's C scanner: decode() would first run two whitespace regexes.
_scan_once = _decoder.scan_once  # type: ignore[attr-defined]


def decode_ws_message(text: str) -> list[Any]:
    """Messages carried by one client WebSocket message.

    An empty message yields nothing; a JSON array yields its elements in order;
    any other JSON value is one message. Broken JSON raises ``ValueError``.
    """
    if not text:
        return []
    try:
        if text[0] != "[":
            return [_decode(text)]
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:
            value = end = None
        if end != len(text):
            # Broken, or followed by whitespace or junk: the full decoder
            # decides (and raises the proper error).
            value = _decode(text)
    except RecursionError:
        # Nesting deeper than the interpreter's stack is broken framing too.
        raise ValueError("JSON nested too deeply") from None
    if type(value) is list:
        return value
    return [value]


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 section 5.3)."""
    n = len(data)
    if n == 0:
        return b""
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    # One big-int XOR is word-at-a-time work done in C by CPython.
    key = mask * (n // 4 + 1)
    return (
        int.from_bytes(data, "little") ^ int.from_bytes(key[:n], "little")
    ).to_bytes(n, "little")


_CONTROL_MAX = 125
_KNOWN_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))


def parse_frames(
    buf: bytes | bytearray,
    pos: int,
    max_payload: int,
    require_mask: bool = True,
    rsv1: bool = False,
) -> tuple[list[tuple[bool, int, bytes]], int, tuple[int, str] | None]:
    """Parse every complete frame in ``buf[pos:]``.

    Returns ``(frames, new_pos, error)``: ``frames`` is a list of
    ``(fin, opcode, unmasked_payload)``, ``new_pos`` the offset of the first
    byte not consumed, and ``error`` ``None`` or ``(close_code, reason)`` for a
    protocol violation found at ``new_pos`` (frames before it stay valid).
    A frame whose header announces more than ``max_payload`` bytes is an error
    (1009) as soon as its header is complete, before its payload arrives.
    With ``rsv1`` (permessage-deflate negotiated, RFC 7692) a frame may have
    RSV1 set: its opcode is then reported with ``0x40`` added; whether RSV1
    is allowed on that frame is the caller's to decide. RSV2 and RSV3 are
    always errors.
    """
    if pos < 0:
        raise ValueError("pos must not be negative")  # as the extension: no indexing from the end
    frames: list[tuple[bool, int, bytes]] = []
    end = len(buf)
    while end - pos >= 2:
        b0 = buf[pos]
        b1 = buf[pos + 1]
        if b0 & 0x70 and (b0 & 0x30 or not rsv1):
            return frames, pos, (1002, "reserved bits set")
        opcode = b0 & 0x0F
        if opcode not in _KNOWN_OPCODES:
            return frames, pos, (1002, "unknown opcode")
        fin = bool(b0 & 0x80)
        masked = b1 & 0x80
        if require_mask and not masked:
            return frames, pos, (1002, "frame not masked")
        length = b1 & 0x7F
        head = 2
        if length == 126:
            if end - pos < 4:
                break
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            head = 4
        elif length == 127:
            if end - pos < 10:
                break
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if length >> 63:
                return frames, pos, (1002, "invalid payload length")
            head = 10
        if opcode >= 0x8 and (not fin or length > _CONTROL_MAX):
            return frames, pos, (1002, "invalid control frame")
        if length > max_payload:
            return frames, pos, (1009, "message too big")
        if masked:
            head += 4
        if end - pos < head + length:
            break
        start = pos + head
        if masked:
            payload = apply_mask(buf[start : start + length], bytes(buf[start - 4 : start]))
        else:
            payload = bytes(buf[start : start + length])
        frames.append((fin, opcode | (b0 & 0x40), payload))
        pos = start + length
    return frames, pos, None


def build_frame(
    opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None, rsv1: bool = False
) -> bytes:
    """One RFC 6455 frame; servers send unmasked, clients pass a 4-byte mask.
    ``rsv1`` marks the first frame of a compressed message (RFC 7692)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (opcode & 0x0F)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 0x10000:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        return head + mask + apply_mask(payload, mask)
    return head + payload


def wrap_js_string(prefix: bytes, text: str, suffix: bytes) -> bytes:
    """``prefix``, ``text`` as a JS string literal in UTF-8, ``suffix``.

    The literal is JSON's (``json.dumps(text, ensure_ascii=False)``) with every
    ``<`` written ``\\u003c``, so ``</script>`` can never end an HTML script
    block; other non-ASCII is kept as is. A lone surrogate cannot be UTF-8:
    ``UnicodeEncodeError``.
    """
    return prefix + _encode_basestring(text).replace("<", "\\u003c").encode("utf-8") + suffix


def event_stream_data(text: str) -> bytes:
    """``text`` as one ``data:`` event of a text/event-stream, in UTF-8, with
    ``%``, CR, LF and NUL percent-escaped (sockjs-client runs decodeURI on every
    event; CR, LF and NUL would break the event framing). A lone surrogate:
    ``UnicodeEncodeError``."""
    # (A search per character is far cheaper than str.translate with a dict,
    # and '%' goes first, since the other escapes bring one.)
    if "%" in text:
        text = text.replace("%", "%25")
    if "\r" in text:
        text = text.replace("\r", "%0D")
    if "\n" in text:
        text = text.replace("\n", "%0A")
    if "\x00" in text:
        text = text.replace("\x00", "%00")
    return ("data: " + text + "\r\n\r\n").encode("utf-8")


def unquote_plus(text: str) -> str:
    """``urllib.parse.unquote_plus(text)``: '+' is a space, ``%XX`` a byte, the
    bytes UTF-8 (an invalid sequence becomes U+FFFD), a '%' without two hex
    digits stays."""
    return _unquote_plus(text)
