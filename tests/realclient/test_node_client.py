"""The real sockjs-client, in Node, against fastsockjs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ServerThread

HERE = Path(__file__).parent

pytestmark = pytest.mark.realclient


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
def test_sockjs_client_in_node(ts: ServerThread, node_modules: Path, transport: str) -> None:
    result = subprocess.run(
        [shutil.which("node") or "node", str(HERE / "node_client.js"), ts.url, transport],
        cwd=HERE, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().split("\n")[-1])
    assert out["transport"] == transport
    assert out["echo"] == out["sent"]
    assert out["code"] == 4000  # the client's own close code comes back to it
    assert (out["closeCode"], out["closeReason"]) == (3000, "Go away!")
