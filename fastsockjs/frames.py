"""Picks the kernel implementation: the Cython extension when built, else its twin.

Set ``FASTSOCKJS_PURE_PYTHON=1`` to force the pure-Python twin (tests and
benchmarks use it to compare the two in one installation).
"""

from __future__ import annotations

import os
from types import ModuleType


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

quote = impl.quote
encode_messages = impl.encode_messages
close_frame = impl.close_frame
decode_ws_message = impl.decode_ws_message
apply_mask = impl.apply_mask
parse_frames = impl.parse_frames
build_frame = impl.build_frame

OPEN_FRAME = "o"
HEARTBEAT_FRAME = "h"
