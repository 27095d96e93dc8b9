"""The real sockjs-client, in Node, against SockJSApp under uvicorn: on its
own (``ts``) and mounted in a FastAPI app next to normal routes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.asgi.support import UvicornThread
from tests.asgi.webapp import make_fastapi_with_sockjs
from tests.realclient.conftest import node_modules  # noqa: F401 - the fixture

CLIENT = Path(__file__).parent.parent / "realclient" / "node_client.js"

pytestmark = pytest.mark.realclient

TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"]


def run_client(base: str, transport: str) -> None:
    result = subprocess.run(
        [shutil.which("node") or "node", str(CLIENT), base, transport],
        cwd=CLIENT.parent, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().split("\n")[-1])
    assert out["transport"] == transport
    assert out["echo"] == out["sent"]
    assert out["code"] == 4000  # the client's own close code comes back to it
    assert (out["closeCode"], out["closeReason"]) == (3000, "Go away!")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sockjs_client_in_node(ts: UvicornThread, node_modules: Path, transport: str) -> None:  # noqa: F811
    run_client(ts.url, transport)


@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[UvicornThread]:
    st = UvicornThread(make_fastapi_with_sockjs).start()
    yield st
    st.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sockjs_client_against_fastapi_mount(
    fastapi_server: UvicornThread, node_modules: Path, transport: str,  # noqa: F811
) -> None:
    run_client(fastapi_server.url, transport)
