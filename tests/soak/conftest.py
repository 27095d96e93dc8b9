"""The soak tests: marked ``soak``; they run by default (CI) and can be left out
with ``-m "not soak"``."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", 'soak: long churn soak (about a minute); deselect with -m "not soak"'
    )
