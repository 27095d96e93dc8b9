"""Loads a compiled module: the Cython extension when built, else its pure-Python
twin.

Set ``FASTSOCKJS_PURE_PYTHON=1`` to force the twins (tests and benchmarks use it
to compare the two in one installation).

In a source checkout (an editable install), an extension older than what it was
compiled from is not used: the twin is, with a warning to rebuild. Otherwise an
edit of ``aio/_connection_py.py`` (compiled as it is) or of a ``.pyx`` would go
unseen until the next build.
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType

#: The checkout this package lives in, if it lives in one (setup.py beside it).
_CHECKOUT = Path(__file__).resolve().parent.parent


def pure_python_forced() -> bool:
    return os.environ.get("FASTSOCKJS_PURE_PYTHON", "") not in ("", "0")


def sources_of(built: Path) -> list[Path]:
    """What the extension at ``built`` (``X.<abi>.so``) is compiled from: ``X.pyx``,
    or ``X_py.py`` with its declarations ``X.pxd`` (Cython's pure-Python mode)."""
    name = built.name.split(".", 1)[0]
    folder = built.parent
    if (folder / f"{name}.pyx").exists():
        return [folder / f"{name}.pyx"]
    if (folder / f"{name}.pxd").exists():
        return [folder / f"{name}_py.py", folder / f"{name}.pxd"]
    return []


def stale_source(built: Path, sources: list[Path]) -> Path | None:
    """The first of ``sources`` changed after ``built`` was, if any."""
    made = built.stat().st_mtime
    for source in sources:
        if source.exists() and source.stat().st_mtime > made:
            return source
    return None


def load(compiled: str, twin: str) -> ModuleType:
    """``fastsockjs.<compiled>``, or ``fastsockjs.<twin>`` when forced, not built,
    or (in a source checkout) older than its source."""
    if not pure_python_forced():
        try:
            # (By name: the compiled module has no source for import analysis to read.)
            module = importlib.import_module("fastsockjs." + compiled)
        except ImportError:
            pass
        else:
            built = Path(module.__file__ or "")
            if not (_CHECKOUT / "setup.py").exists() or built.suffix not in (".so", ".pyd"):
                return module  # installed: built with its sources, whatever the times
            newer = stale_source(built, sources_of(built))
            if newer is None:
                return module
            warnings.warn(
                f"fastsockjs: {built.name} is older than {newer.name}: using the pure-Python "
                f"fastsockjs.{twin} (rebuild: FASTSOCKJS_BUILD_EXTENSION=required "
                "pip install -e .)",
                RuntimeWarning,
                stacklevel=2,
            )
    return importlib.import_module("fastsockjs." + twin)
