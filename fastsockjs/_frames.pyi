"""Type stubs for the Cython kernels (mirror of ``fastsockjs._frames_py``)."""

from collections.abc import Sequence
from typing import Any, Final

__all__ = [
    "IMPLEMENTATION",
    "apply_mask",
    "build_frame",
    "close_frame",
    "decode_ws_message",
    "encode_messages",
    "parse_frames",
    "quote",
    "unquote_plus",
    "wrap_js_string",
    "event_stream_data",
]

IMPLEMENTATION: Final[str]

def quote(s: str) -> str: ...
def encode_messages(messages: Sequence[str]) -> str: ...
def close_frame(code: int, reason: str) -> str: ...
def decode_ws_message(text: str) -> list[Any]: ...
def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes: ...
def parse_frames(
    buf: bytes | bytearray,
    pos: int,
    max_payload: int,
    require_mask: bool = True,
    rsv1: bool = False,
) -> tuple[list[tuple[bool, int, bytes]], int, tuple[int, str] | None]: ...
def build_frame(
    opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None, rsv1: bool = False
) -> bytes: ...
def wrap_js_string(prefix: bytes, text: str, suffix: bytes) -> bytes: ...
def event_stream_data(text: str) -> bytes: ...
def unquote_plus(text: str) -> str: ...
