"""Benchmarks (pytest-benchmark) — never part of the default test run.

The repository's ``testpaths`` is ``tests``, so ``pytest`` alone never looks
here. Run them with::

    python -m pytest bench --benchmark-only --benchmark-autosave
    python -m pytest bench --benchmark-only --benchmark-compare   # against the last save

Nothing here asserts a timing.
"""

from __future__ import annotations

import importlib.util

collect_ignore = ["load", "node", "results"]

if importlib.util.find_spec("pytest_benchmark") is None:  # pragma: no cover
    # Without the plugin the ``benchmark`` fixture does not exist: collect nothing
    # rather than erroring (install with ``pip install -e '.[bench]'``).
    collect_ignore_glob = ["test_*.py"]
