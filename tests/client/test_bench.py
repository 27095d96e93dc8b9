"""``fastsockjs bench``: closed and open loop in-process, and the command line
with --json over two processes, against a fastsockjs echo server."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fastsockjs import apps
from fastsockjs.client.bench import Plan, Result, run_sessions
from fastsockjs.testing import serve
from tests.helpers import ServerThread


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
@pytest.mark.parametrize("rate", [None, 200.0])
async def test_run_sessions(transport: str, rate: float | None) -> None:
    async with serve(apps.echo(prefix="/echo")) as url:
        plan = Plan(
            url + "/echo", transport, sessions=4, duration=0.5, warmup=0.2, window=2, rate=rate
        )
        result = await run_sessions(plan, 4)
    assert result.sessions == 4 and result.errors == 0
    assert result.sent == result.received > 0
    assert sum(result.buckets.values()) == result.received
    p50, p99, p999 = (result.percentile(q) for q in (50, 99, 99.9))
    assert 0 < p50 <= p99 <= p999 < 10_000
    if rate is not None:
        # Open loop: the schedule decides how many, not the replies.
        assert result.sent == pytest.approx(rate * plan.duration, abs=8)


def test_histogram_percentiles() -> None:
    r = Result()
    for us in range(1, 1001):
        r.record(us * 1000)  # 1..1000 us
    assert r.percentile(50) == pytest.approx(0.5, rel=0.02)
    assert r.percentile(99) == pytest.approx(0.99, rel=0.02)
    assert math.isnan(Result().percentile(50))


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ServerThread]:
    server = ServerThread(lambda: [apps.echo(prefix="/echo")]).start()
    yield server
    server.stop()


def test_cli_json_two_processes(echo_server: ServerThread) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastsockjs", "bench", echo_server.url + "/echo",
         "--transport", "xhr-streaming", "-n", "4", "-d", "1", "--window", "2",
         "--processes", "2", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["processes"] == 2 and out["sessions_opened"] == 4
    assert out["sent"] == out["received"] > 0 and out["errors"] == 0
    assert out["msgs_per_s"] > 0
    assert set(out["latency_ms"]) == {"p50", "p99", "p99.9"}
    assert "received" in result.stderr  # the progress line


def test_cli_unreachable_service_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastsockjs", "bench", "http://127.0.0.1:1/echo", "-n", "1",
         "-d", "0.2", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["sessions_opened"] == 0
