"""Picks the kernel implementation: the Cython extension when built, else its twin.

Set ``FASTSOCKJS_PURE_PYTHON=1`` to force the pure-Python twin (tests and
benchmarks use it to compare the two in one installation).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any, Protocol

from fastsockjs.kernels import load

impl: ModuleType = load("_frames", "_frames_py")
speedups_enabled: bool = impl.IMPLEMENTATION == "cython"

# Re-exported with the twin's signatures, so callers are typed whichever is loaded.
quote: Callable[[str], str] = impl.quote
encode_messages: Callable[[Sequence[str]], str] = impl.encode_messages
close_frame: Callable[[int, str], str] = impl.close_frame
decode_ws_message: Callable[[str], list[Any]] = impl.decode_ws_message
apply_mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] = impl.apply_mask
parse_frames: Callable[..., tuple[list[tuple[bool, int, bytes]], int, tuple[int, str] | None]] = (
    impl.parse_frames
)
build_frame: Callable[..., bytes] = impl.build_frame
wrap_js_string: Callable[[bytes, str, bytes], bytes] = impl.wrap_js_string
event_stream_data: Callable[[str], bytes] = impl.event_stream_data
unquote_plus: Callable[[str], str] = impl.unquote_plus

OPEN_FRAME = "o"


def as_text(message: Any) -> str:
    """What ``write()`` sends for a value: text as is, bytes as UTF-8, anything
    else as its JSON text (TypeError / ValueError when it has none)."""
    if isinstance(message, str):
        return str(message)
    if isinstance(message, (bytes, bytearray)):
        return bytes(message).decode("utf-8", "replace")
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def text_or_none(message: Any, caller: str, log: Any) -> str | None:
    """:func:`as_text`, or None (and an error logged, naming ``caller``) for a
    value JSON cannot encode: writes never raise, so a broadcast loop cannot
    race a bad value either."""
    try:
        return as_text(message)
    except (TypeError, ValueError, RecursionError) as exc:
        log.error("%s(): a %s cannot be sent as JSON text (%s); not sent",
                  caller, type(message).__name__, exc)
        return None


class Prepared(Protocol):
    """Takes a message quoted once for many (a broadcast, a channel)."""

    def write_quoted(self, quoted: str, text: str) -> bool: ...


def fan_out(text: str, targets: Iterable[Prepared]) -> int:
    """Write ``text`` to every target, quoting it once; returns how many took it."""
    quoted = quote(text)
    sent = 0
    for target in targets:
        sent += target.write_quoted(quoted, text)
    return sent
