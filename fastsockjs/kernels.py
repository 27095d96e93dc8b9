"""Loads a kernel: the Cython extension when built, else its pure-Python twin.

Set ``FASTSOCKJS_PURE_PYTHON=1`` to force the twins (tests and benchmarks use it
to compare the two in one installation).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def pure_python_forced() -> bool:
    return os.environ.get("FASTSOCKJS_PURE_PYTHON", "") not in ("", "0")


def load(compiled: str, twin: str) -> ModuleType:
    """``fastsockjs.<compiled>``, or ``fastsockjs.<twin>`` when forced or not built."""
    if not pure_python_forced():
        try:
            # (By name: the compiled module has no source for import analysis to read.)
            return importlib.import_module("fastsockjs." + compiled)
        except ImportError:
            pass
    return importlib.import_module("fastsockjs." + twin)
