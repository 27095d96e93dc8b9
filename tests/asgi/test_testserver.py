"""The ASGI twin of ``fastsockjs testserver``, started as docs/asgi.md says:
``uvicorn --factory fastsockjs.apps:asgi_testserver``, under httptools and each of
uvicorn's WebSocket implementations; it answers /echo/info and echoes over a
SockJS WebSocket session, and /close closes sessions as the native one does."""

from __future__ import annotations

import json
import re
import signal
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")

from tests.helpers import Proc, RawWebSocket, close_code, request, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("ws", ["websockets-sansio", "websockets", "wsproto"])
def test_uvicorn_serves_the_asgi_testserver(tmp_path: Path, ws: str) -> None:
    child = Proc(
        "uvicorn",
        [sys.executable, "-m", "uvicorn", "--factory", "fastsockjs.apps:asgi_testserver",
         "--host", "127.0.0.1", "--port", "0", "--http", "httptools", "--ws", ws,
         "--log-level", "info"],
        tmp_path / "uvicorn.log", cwd=ROOT,
    )
    try:
        def listening() -> int | None:
            assert child.alive(), child.log_text()
            m = re.search(r"running on http://127\.0\.0\.1:(\d+)", child.log_text())
            return int(m.group(1)) if m else None

        port: int = wait_for(listening, 20, "uvicorn's 'running on' line")

        info = request(port, "GET", "/echo/info")
        assert info.status == 200, info.body
        assert json.loads(info.body)["websocket"] is True
        assert json.loads(request(port, "GET", "/disabled_websocket_echo/info").body)[
            "websocket"] is False

        ws_echo = RawWebSocket(port, f"/echo/000/{uuid.uuid4()}/websocket")
        assert ws_echo.recv_text() == "o"
        ws_echo.send_text(json.dumps(["hello", "\u00e9\u2028"]))
        assert json.loads(ws_echo.recv_text()[1:]) == ["hello", "\u00e9\u2028"]
        ws_echo.close()

        closing = RawWebSocket(port, f"/close/000/{uuid.uuid4()}/websocket")
        assert closing.recv_text() == "o"
        assert closing.recv_text() == 'c[3000,"Go away!"]'
        frame = closing.recv_frame()
        assert frame is not None and close_code(frame[1]) == (1000, "Normal closure")
        closing.close()

        raw = RawWebSocket(port, "/close/websocket")  # raw WebSocket: the app's own close
        frame = raw.recv_frame()
        assert frame is not None and close_code(frame[1]) == (3000, "Go away!")
        raw.close()
    finally:
        code = child.stop(sig=signal.SIGINT)
    assert code == 0, child.log_text()  # a graceful lifespan shutdown
