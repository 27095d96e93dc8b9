"""RFC 6455, client side (sans-I/O): the handshake's key and check, masked
frames out, unmasked frames in, on the project's frame kernels."""

from __future__ import annotations

import base64
import os
from typing import Any

from fastsockjs import frames
from fastsockjs.protocol.websocket import (
    CLOSE,
    FAIL,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    PING,
    TEXT,
    accept_key,
    close_payload,
    parse_close,
)

__all__ = ["CLOSE", "FAIL", "PING", "TEXT", "ClientCodec", "accept_key", "new_key"]


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


class ClientCodec:
    """Bytes from the server in, events out: (TEXT, str), (PING, bytes),
    (CLOSE, (code, reason)) or (FAIL, reason). Binary messages are a FAIL:
    SockJS servers send text only."""

    __slots__ = ("_buf", "max_size", "_frag", "_frag_size", "failed")

    def __init__(self, max_size: int) -> None:
        self._buf = bytearray()
        self.max_size = max_size
        self._frag: list[bytes] | None = None
        self._frag_size = 0
        self.failed = False

    def receive_data(self, data: bytes) -> list[tuple[int, Any]]:
        if self.failed:
            return []
        self._buf += data
        # A server's frames are not masked (RFC 6455 5.1).
        parsed, pos, error = frames.parse_frames(self._buf, 0, self.max_size, require_mask=False)
        del self._buf[:pos]
        events: list[tuple[int, Any]] = []
        for fin, opcode, payload in parsed:
            event = self._frame(fin, opcode, payload)
            if event is None:
                continue
            events.append(event)
            if event[0] in (FAIL, CLOSE):
                self.failed = True
                return events
        if error is not None:
            self.failed = True
            events.append((FAIL, f"invalid WebSocket frame: {error[1]}"))
        return events

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> tuple[int, Any] | None:
        if opcode in (OP_TEXT, OP_CONT):
            if (opcode == OP_TEXT) == (self._frag is not None):
                return FAIL, "unexpected continuation frame"
            if self._frag is None:
                self._frag, self._frag_size = [], 0
            self._frag.append(payload)
            self._frag_size += len(payload)
            if self._frag_size > self.max_size:
                return FAIL, f"message over {self.max_size} bytes"
            if not fin:
                return None
            data, self._frag = b"".join(self._frag), None
            try:
                return TEXT, data.decode("utf-8")
            except UnicodeDecodeError:
                return FAIL, "invalid UTF-8 in a text message"
        if opcode == OP_BINARY:
            return FAIL, "a binary message (SockJS sends text)"
        if opcode == OP_PING:
            return PING, payload
        if opcode == OP_PONG:
            return None
        if opcode == OP_CLOSE:
            parsed = parse_close(payload)
            if parsed is None:
                return FAIL, "invalid close frame"
            return CLOSE, parsed
        return FAIL, f"unknown opcode {opcode}"

    @staticmethod
    def text(message: bytes) -> bytes:
        return frames.build_frame(OP_TEXT, message, True, os.urandom(4))

    @staticmethod
    def pong(payload: bytes) -> bytes:
        return frames.build_frame(OP_PONG, payload, True, os.urandom(4))

    @staticmethod
    def close(code: int = 1000, reason: str = "") -> bytes:
        return frames.build_frame(OP_CLOSE, close_payload(code, reason), True, os.urandom(4))

