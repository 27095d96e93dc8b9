"""The chat page as people use it, in headless Chromium (Debian's, driven by
playwright-core through chat_driver.js): with one worker, and with two workers on
Redis behind haproxy. Each page has its own browser context, as separate browsers
would. Pages of one room see each other in ``#people`` and see each other's messages;
a page that joins later gets the history; a page that closes leaves the others'
``#people``; names clash into a suffix; the rate limit shows a notice; markup stays
text; the page says clearly when the SockJS client cannot be loaded.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.cluster import ROOT, Cluster, RedisServer, free_port
from tests.helpers import Proc, request, wait_for

HERE = Path(__file__).parent

pytestmark = pytest.mark.realclient


class Browser:
    """chat_driver.js: one command in, one JSON answer out, each bounded in time."""

    def __init__(self, node_modules: Path, chromium: Path, timeout_ms: int = 20000,
                 chromium_args: list[str] | None = None) -> None:
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
               "NODE_PATH": str(node_modules),
               "CHROMIUM_EXTRA_ARGS": json.dumps(chromium_args or [])}
        self.proc = subprocess.Popen(
            [shutil.which("node") or "node", str(HERE / "chat_driver.js"), str(chromium)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=HERE, start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.timeout_ms = timeout_ms
        self.first = True
        threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True).start()

    def _pump(self, stream: Any, answers: bool) -> None:
        for line in stream:
            (self.lines.put if answers else self.stderr.append)(line)
        if answers:
            self.lines.put(None)

    def __call__(self, op: str, name: str, **args: Any) -> dict[str, Any]:
        cmd = {"op": op, "name": name, **args}
        if self.first:
            cmd["timeout"] = self.timeout_ms
            self.first = False
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        try:  # the browser's first start is the slowest step
            line = self.lines.get(timeout=self.timeout_ms / 1000 * 2 + 60)
        except queue.Empty:
            raise AssertionError(f"chat_driver.js: no answer to {cmd}") from None
        assert line is not None, f"driver exited ({self.proc.poll()})\n{''.join(self.stderr)[-3000:]}"
        got = dict(json.loads(line))
        if "error" in got:
            raise AssertionError(f"{cmd}: {got['error']}\n" + "\n".join(got.get("log", [])[-40:]))
        return got

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            pass
        # Chromium's helpers share the driver's session: leave none behind.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def browser(node_modules: Path, chromium: Path) -> Iterator[Browser]:
    b = Browser(node_modules, chromium)
    try:
        yield b
    finally:
        b.close()


def client_file(node_modules: Path) -> Path:
    return node_modules / "sockjs-client" / "dist" / "sockjs.min.js"


class OneWorker:
    """``python -m fastsockjs chat`` on a free port, with the npm sockjs-client."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.port = free_port()
        self.proc = Proc("chat", [sys.executable, "-m", "fastsockjs", "chat", "--port",
                                  str(self.port), *args], workdir / "chat.log", cwd=ROOT)
        wait_for(lambda: request(self.port, "GET", "/").status == 200, 20,
                 f"the chat page\n{self.proc.log_text()}")

    def url(self, query: str) -> str:
        return f"http://127.0.0.1:{self.port}/?{query}"


@pytest.fixture(scope="module")
def one_worker(node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneWorker]:
    w = OneWorker(tmp_path_factory.mktemp("chat1"), "--sockjs-client",
                  str(client_file(node_modules)), "--rate", "5/60")
    try:
        yield w
    finally:
        w.proc.stop(10)


@pytest.fixture(scope="module")
def browser_cluster(
    redis: RedisServer, haproxy_bin: str, node_modules: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    c = Cluster(redis, haproxy_bin, tmp_path_factory.mktemp("browser-cluster"),
                extra_args=["--sockjs-client", str(client_file(node_modules))])
    try:
        yield c
    finally:
        c.stop()


def room_story(b: Browser, url: dict[str, str], room: str) -> None:
    """Two people talk, a third arrives later and reads the history, one leaves."""
    ann = b("open", "ann", url=url["ann"])
    bob = b("open", "bob", url=url["bob"])
    assert (ann["nick"], bob["nick"]) == ("ann", "bob")
    for name in ("ann", "bob"):
        b("wait_people", name, people=["ann", "bob"])
    b("say", "ann", text=f"hello from ann in {room} <b>not bold</b>")
    b("say", "bob", text=f"hi ann, bob in {room}")
    texts = [f"hello from ann in {room} <b>not bold</b>", f"hi ann, bob in {room}"]
    for name in ("ann", "bob"):
        page = b("wait_texts", name, texts=texts)
        said = {m["text"]: m for m in page["messages"]}
        assert said[texts[0]]["nick"] == "ann" and "ann" in said[texts[0]]["line"]
        assert said[texts[1]]["nick"] == "bob" and "bob" in said[texts[1]]["line"]
        assert said[texts[0]]["mine"] == (name == "ann")
        assert page["markup"] == 0  # "<b>" shown as text, never as an element
        assert page["me"] == [name]
        assert all(m["time"] for m in page["messages"])
        assert any(n["text"].endswith("bob joined") for n in page["notices"]) == (name == "ann")

    b("open", "carol", url=url["carol"])
    carol = b("wait_texts", "carol", texts=texts)  # the history, replayed
    assert [m["text"] for m in carol["messages"]] == texts  # once each, in order
    for name in ("ann", "bob", "carol"):
        b("wait_people", name, people=["ann", "bob", "carol"])

    # The same name again, from another page: the server adds a suffix.
    twin = b("open", "twin", url=url["twin"])
    assert twin["nick"] == "ann-2", twin
    b("wait_people", "ann", people=["ann", "ann-2", "bob", "carol"])
    b("close", "twin")

    b("close", "bob")
    for name in ("ann", "carol"):
        page = b("wait_people", name, people=["ann", "carol"])
        assert any(n["text"].endswith("bob left") for n in page["notices"]), page["notices"]


def test_one_worker_room(one_worker: OneWorker, browser: Browser) -> None:
    w = one_worker
    url = {name: w.url(f"room=solo&nick={name}") for name in ("ann", "bob", "carol")}
    url["twin"] = w.url("room=solo&nick=ann")
    room_story(browser, url, "solo")
    # Another room shares nothing.
    other = browser("open", "dan", url=w.url("room=other&nick=dan"))
    assert other["messages"] == [] and other["people"] == ["dan"]


def test_one_worker_rate_limit_notice(one_worker: OneWorker, browser: Browser) -> None:
    browser("open", "fast", url=one_worker.url("room=rate&nick=fast"))
    texts = [f"burst {i}" for i in range(7)]
    for text in texts:
        browser("say", "fast", text=text)
    page = browser("wait_texts", "fast", texts=texts[:5])
    wait_for(lambda: len([n for n in browser("snapshot", "fast")["notices"]
                          if "limit-rate" in n["cls"]]) == 2, 10, "two rate notices")
    page = browser("snapshot", "fast")
    assert [m["text"] for m in page["messages"]] == texts[:5]  # the server refused 2
    assert any("Slow down" in n["text"] for n in page["notices"])


def test_two_workers_behind_haproxy_show_one_room(
    browser_cluster: Cluster, browser: Browser
) -> None:
    c = browser_cluster
    owners = c.wait_balanced()
    base = f"http://127.0.0.1:{c.listen_port}/?room=duo"
    url = {
        "ann": f"{base}&nick=ann&server={owners['w0']}&transports=xhr-streaming",
        # The pages that close use WebSocket: through haproxy, a closed xhr-streaming
        # page is only noticed at the next heartbeat (25 s).
        "bob": f"{base}&nick=bob&server={owners['w1']}&transports=websocket",
        "carol": f"{base}&nick=carol&server={owners['w1']}&transports=xhr-polling",
        "twin": f"{base}&nick=ann&server={owners['w0']}&transports=websocket",
    }
    room_story(browser, url, "duo")
    # The pages really were on both workers.
    for name, worker, transport in (("ann", "w0", "xhr-streaming"),
                                    ("carol", "w1", "xhr-polling")):
        page = browser("snapshot", name)
        assert (page["worker"], page["transport"]) == (worker, transport), page


def test_killed_worker_pages_come_back_under_their_names(
    browser_cluster: Cluster, browser: Browser
) -> None:
    c = browser_cluster
    owners = c.wait_balanced()
    base = f"http://127.0.0.1:{c.listen_port}/?room=phoenix"
    browser("open", "eve", url=f"{base}&nick=eve&server={owners['w0']}")
    browser("open", "fay", url=f"{base}&nick=fay&server={owners['w1']}&transports=eventsource")
    browser("wait_people", "eve", people=["eve", "fay"])
    victim = c.status(1)["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: c.status(1)["pid"] != victim and c.status(1)["broker"]["connected"],
             20, "w1 restarted")
    wait_for(lambda: any(n["text"].endswith("Disconnected (1006 )") or "Disconnected" in n["text"]
                         for n in browser("snapshot", "fay")["notices"]), 20, "fay disconnected")
    fay = browser("wait_state", "fay", state="open")
    assert fay["nick"] == "fay"  # its own name back, not fay-2
    browser("say", "fay", text="back again")
    browser("wait_texts", "eve", texts=["back again"])
    browser("wait_people", "eve", people=["eve", "fay"])


def test_page_says_so_when_the_sockjs_client_cannot_load(
    browser: Browser, tmp_path: Path
) -> None:
    # A client URL that cannot answer (a closed port): as offline without npm.
    dead = f"http://127.0.0.1:{free_port()}/sockjs.min.js"
    w = OneWorker(tmp_path, "--sockjs-url", dead)
    try:
        page = browser("open", "lost", url=w.url("room=x&nick=lost"), state="error")
        assert "could not load the SockJS client" in page["problem"], page
        assert dead in page["problem"]
        assert page["status"].startswith("Error")
    finally:
        w.proc.stop(10)
