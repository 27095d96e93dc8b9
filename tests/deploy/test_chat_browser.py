"""The chat page as a user runs it: ``fastsockjs chat --workers 2 --broker redis://...``
behind haproxy, opened in headless Chromium (Debian's, driven by playwright-core). Pages
in separate browser contexts, attached to different workers over different transports,
see each other's messages; when one worker is killed, its pages reconnect by themselves
and the chat goes on."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.cluster import Cluster, RedisServer, wait_for

HERE = Path(__file__).parent

pytestmark = pytest.mark.realclient


@pytest.fixture(scope="module")
def browser_cluster(
    redis: RedisServer, haproxy_bin: str, node_modules: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    client = node_modules / "sockjs-client" / "dist" / "sockjs.min.js"
    c = Cluster(redis, haproxy_bin, tmp_path_factory.mktemp("browser-cluster"),
                extra_args=["--sockjs-client", str(client)])
    try:
        yield c
    finally:
        c.stop()


def test_chat_pages_on_different_workers_see_each_other(
    browser_cluster: Cluster, node_modules: Path, chromium: Path
) -> None:
    c = browser_cluster
    owners = c.wait_balanced()
    base = f"http://127.0.0.1:{c.listen_port}/?room=browsers"
    pages = [
        {"name": "ws@w0", "url": f"{base}&server={owners['w0']}", "worker": "w0",
         "transport": "websocket"},
        {"name": "stream@w1", "url": f"{base}&server={owners['w1']}&transports=xhr-streaming",
         "worker": "w1", "transport": "xhr-streaming"},
        {"name": "poll@w1", "url": f"{base}&server={owners['w1']}&transports=xhr-polling",
         "worker": "w1", "transport": "xhr-polling"},
        {"name": "es@w0", "url": f"{base}&server={owners['w0']}&transports=eventsource",
         "worker": "w0", "transport": "eventsource"},
    ]
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "NODE_PATH": str(node_modules)}
    proc = subprocess.Popen(
        [shutil.which("node") or "node", str(HERE / "chat_driver.js"), str(chromium)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=HERE, start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)
        if sink is lines.put:
            lines.put(None)

    threading.Thread(target=pump, args=(proc.stdout, lines.put), daemon=True).start()
    threading.Thread(target=pump, args=(proc.stderr, stderr.append), daemon=True).start()

    def answer(timeout: float) -> dict[str, Any]:
        line = lines.get(timeout=timeout)
        assert line is not None, f"driver exited ({proc.poll()})\n{''.join(stderr)[-3000:]}"
        got = dict(json.loads(line))
        assert "error" not in got, (
            got["error"] + "\n" + "\n".join(got.get("log", [])[-40:]) + "\n" + c.log_text()
        )
        return got

    def check(round_name: str, snapshot: list[dict[str, Any]]) -> None:
        texts = [f"{round_name} from {p['name']}" for p in pages]
        for want, got in zip(pages, snapshot):
            received = [m for m in got["messages"] if m["text"] in texts]
            assert sorted(m["text"] for m in received) == sorted(texts), got  # once each
            assert [m["text"] for m in received if m["mine"]] == [
                f"{round_name} from {want['name']}"
            ]

    try:
        assert proc.stdin is not None
        spec = {"pages": pages, "timeout": 20000, "rounds": ["hello", "again"]}
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()

        first = answer(90)["pages"]
        check("hello", first)
        for want, got in zip(pages, first):
            assert got["worker"] == want["worker"], got
            assert got["transport"] == want["transport"], got
            # Each message names the worker of the page that typed it.
            for m in got["messages"]:
                sender = next(p for p in pages if m["text"] == f"hello from {p['name']}")
                assert m["who"].endswith("@" + sender["worker"]), m

        # Kill w1 under its two pages; they must reconnect by themselves.
        victim = c.status(1)["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: c.status(1)["pid"] != victim and c.status(1)["broker"]["connected"],
                 20, "w1 restarted")
        wait_for(lambda: c.sid_worker(owners["w1"]) == "w1", 15, "haproxy using w1 again")
        time.sleep(1.0)  # let pages caught mid-failover settle
        proc.stdin.write("go\n")
        proc.stdin.flush()

        final = answer(90)["pages"]
        check("again", final)
        for want, got in zip(pages, final):
            if want["worker"] == "w1":
                assert got["hellos"] >= 2, got  # it reconnected
            assert got["transport"] == want["transport"], got
    finally:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        # Chromium's helpers share the driver's session: leave none behind.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
