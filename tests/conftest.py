from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from fastsockjs.cli import testserver
from tests.helpers import ServerThread, TlsFiles

# uvloop has no Windows build (the package's dependency leaves it out there).
# Elsewhere it is always a parameter, so a missing uvloop errors, never skips.
LOOP_KINDS = ["asyncio"] if sys.platform == "win32" else ["uvloop", "asyncio"]


@pytest.fixture(scope="module", params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def ts(loop_kind: str) -> Iterator[ServerThread]:
    """The test-server services (as sockjs-node's), on both event loops."""
    server = ServerThread(
        lambda: testserver("http://127.0.0.1/static/sockjs.min.js"), loop_kind
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate for 127.0.0.1 (trustme)."""
    return TlsFiles(tmp_path_factory.mktemp("tls"))
