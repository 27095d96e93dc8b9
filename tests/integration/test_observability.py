"""stats(), the access log and the Prometheus endpoint."""

from __future__ import annotations

import logging
import uuid

import pytest

from fastsockjs.apps import echo
from fastsockjs.workers import worker_id
from tests.helpers import RawHttp, RawWebSocket, ServerThread, request, wait_for


@pytest.fixture
def st(loop_kind: str):  # type: ignore[no-untyped-def]
    s = ServerThread(lambda: [echo(prefix="/o", max_sessions=3)], loop_kind,
                     metrics_path="/metrics").start()
    yield s
    s.stop()


def test_stats_count_sessions_messages_and_refusals(st: ServerThread) -> None:
    server = st.servers[0]
    url = f"/o/000/{uuid.uuid4()}"
    request(st.port, "POST", url + "/xhr")
    request(st.port, "POST", url + "/xhr_send", '["a","b"]')
    assert request(st.port, "POST", url + "/xhr").body == b'a["a","b"]\n'
    ws = RawWebSocket(st.port, f"/o/000/{uuid.uuid4()}/websocket")
    assert ws.recv_text() == "o"
    ws.send_text('["c"]')
    assert ws.recv_text() == 'a["c"]'
    request(st.port, "POST", f"/o/000/{uuid.uuid4()}/xhr_send", "[]")  # unknown session
    request(st.port, "POST", url + "/xhr_send", "[broken")
    c = RawHttp(st.port)
    c.request("POST", f"/o/000/{uuid.uuid4()}/xhr_streaming")
    wait_for(lambda: st.call(server.stats)["sessions"] == 3, 5, "the streaming session open")
    assert request(st.port, "POST", f"/o/000/{uuid.uuid4()}/xhr").status == 503
    s = st.call(server.stats)
    assert s["sessions"] == 3
    assert s["sessions_by_transport"] == {"xhr-polling": 1, "websocket": 1, "xhr-streaming": 1}
    assert s["opened"] == 3 and s["closed"] == 0
    assert s["messages_in"] == 3 and s["messages_out"] == 3
    assert s["refused"] == {"unknown_session": 1, "bad_payload": 1, "capacity": 1}
    # Bytes of this server's requests, responses and WebSocket frames: at least the
    # messages themselves, and within what the whole listener moved.
    ls = st.call(st.listener.stats)  # type: ignore[union-attr]
    assert 0 < s["bytes_in"] <= ls["bytes_in"] and 0 < s["bytes_out"] <= ls["bytes_out"]
    # Every message written has been delivered, and the kernel took every byte.
    assert s["queued_bytes"] == 0
    ws.close()
    c.close()
    wait_for(lambda: st.call(server.stats)["closed"] >= 2, 5, "two sessions closed")
    assert st.call(server.stats)["closed"] == 2
    ls = st.call(st.listener.stats)  # type: ignore[union-attr]
    assert ls["bytes_in"] > 0 and ls["bytes_out"] > 0


def test_access_log_lines(st: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fastsockjs.access")
    request(st.port, "GET", "/o/info")
    request(st.port, "GET", "/o/nothing")
    lines = [r.getMessage() for r in caplog.records if r.name == "fastsockjs.access"]
    assert any("GET /o/info HTTP/1.1 200" in line for line in lines), lines
    assert any("GET /o/nothing HTTP/1.1 404" in line for line in lines), lines


def test_prometheus_endpoint(st: ServerThread) -> None:
    request(st.port, "POST", f"/o/000/{uuid.uuid4()}/xhr")
    r = request(st.port, "GET", "/metrics")
    assert r.status == 200
    text = r.text
    worker = worker_id()  # pid<pid> outside --workers: the server runs in this process
    assert f'fastsockjs_sessions{{prefix="/o",transport="xhr-polling",worker="{worker}"}} 1.0' in text
    assert "fastsockjs_opened_total" in text
    assert "fastsockjs_bytes_in_total" in text
    assert f'fastsockjs_server_bytes_out_total{{prefix="/o",worker="{worker}"}}' in text
