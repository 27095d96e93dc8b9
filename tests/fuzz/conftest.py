"""Fixtures of the fuzz tests: ``fz``, a live server with healthy sessions, per loop kind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.live import FuzzServer


@pytest.fixture(scope="module")
def fz(loop_kind: str) -> Iterator[FuzzServer]:
    server = FuzzServer(loop_kind)
    yield server
    server.close()
