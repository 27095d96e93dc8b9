"""The real sockjs-client, in Node, over https and wss (the test CA trusted
through NODE_EXTRA_CA_CERTS), against the native TLS listener."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastsockjs.cli import testserver as make_testserver
from tests.helpers import ServerThread, TlsFiles

HERE = Path(__file__).parent

pytestmark = pytest.mark.realclient


@pytest.fixture(scope="module")
def tls_ts(loop_kind: str, tls: TlsFiles) -> Iterator[ServerThread]:
    server = ServerThread(
        lambda: make_testserver("/static/sockjs.min.js"), loop_kind, ssl=tls.server_context()
    ).start()
    yield server
    server.stop()


def run_node_client(base: str, transport: str, ca: Path) -> dict[str, object]:
    result = subprocess.run(
        [shutil.which("node") or "node", str(HERE / "node_client.js"), base, transport],
        cwd=HERE, capture_output=True, text=True, timeout=60,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(ca)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out: dict[str, object] = json.loads(result.stdout.strip().split("\n")[-1])
    return out


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
def test_sockjs_client_over_tls(
    tls_ts: ServerThread, tls: TlsFiles, node_modules: Path, transport: str
) -> None:
    base = f"https://127.0.0.1:{tls_ts.port}"
    out = run_node_client(base, transport, tls.ca)
    assert out["transport"] == transport
    assert out["echo"] == out["sent"]
    assert out["code"] == 4000
    assert (out["closeCode"], out["closeReason"]) == (3000, "Go away!")


def test_untrusted_certificate_fails(tls_ts: ServerThread, node_modules: Path) -> None:
    """Without the CA the client cannot connect: the test above really used TLS."""
    result = subprocess.run(
        [shutil.which("node") or "node", str(HERE / "node_client.js"),
         f"https://127.0.0.1:{tls_ts.port}", "xhr-polling"],
        cwd=HERE, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"},
    )
    out = json.loads(result.stdout.strip().split("\n")[-1]) if result.returncode == 0 else {}
    assert result.returncode != 0 or (out["transport"] is None and out["echo"] == []), out
