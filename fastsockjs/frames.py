"""Picks the kernel implementation: the Cython extension when built, else its twin.

Set ``FASTSOCKJS_PURE_PYTHON=1`` to force the pure-Python twin (tests and
benchmarks use it to compare the two in one installation).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


def _load() -> ModuleType:
    if os.environ.get("FASTSOCKJS_PURE_PYTHON", "") not in ("", "0"):
        from fastsockjs import _frames_py

        return _frames_py
    try:
        from fastsockjs import _frames  # type: ignore[attr-defined,unused-ignore]

        return _frames
    except ImportError:
        from fastsockjs import _frames_py

        return _frames_py


impl: ModuleType = _load()
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

OPEN_FRAME = "o"
HEARTBEAT_FRAME = "h"
