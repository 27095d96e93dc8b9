"""Listener(health_path=...): 200 while fine, 503 while the event loop lags
beyond max_loop_lag (measured by its tick), and not answered elsewhere."""

from __future__ import annotations

import time

from fastsockjs import Server
from tests.helpers import ServerThread, request


def test_health_endpoint_reports_loop_lag() -> None:
    st = ServerThread(lambda: [Server(prefix="/echo")], health_path="/_health",
                      max_loop_lag=0.5).start()
    try:
        r = request(st.port, "GET", "/_health")
        assert (r.status, r.body, r["cache-control"]) == (200, b"ok\n", "no-store")
        assert request(st.port, "POST", "/_health").status == 404  # GET and HEAD only
        assert st.loop is not None
        st.loop.call_soon_threadsafe(time.sleep, 1.0)  # block the loop
        r = request(st.port, "GET", "/_health")
        assert r.status == 503 and r.text.startswith("down: the event loop lags"), r.text
        # The next ticks are on time again.
        for _ in range(50):
            r = request(st.port, "GET", "/_health")
            if r.status == 200:
                break
            time.sleep(0.05)
        assert r.status == 200, r.text
    finally:
        st.stop()
