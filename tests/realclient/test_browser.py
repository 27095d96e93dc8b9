"""The real sockjs-client 1.6.1 in headless Chromium, against fastsockjs, per transport.

One browser for the module (``browser_driver.js``: playwright-core driving Debian's
/usr/bin/chromium), a fresh page per test. The SockJS server also serves the very
sockjs-client file at /static/sockjs.min.js, which its iframe page loads; the test page
comes from a second listener (another port, hence another origin), except for
``htmlfile``, which sockjs-client only uses from a same-origin page.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastsockjs import cli
from tests.helpers import ServerThread

HERE = Path(__file__).parent

pytestmark = pytest.mark.realclient

CLIENT_PATH = "/static/sockjs.min.js"
PAGE_PATH = "/page.html"
#: Bound of each in-page stage (echo, then close), in ms; the driver call gets more.
STAGE_TIMEOUT_MS = 20000
CALL_TIMEOUT = 2 * STAGE_TIMEOUT_MS / 1000 + 20
LAUNCH_TIMEOUT = 90.0

MESSAGES = [
    "hello",
    "ąść €",
    "\u2028",
    "\u2029",
    "\U0001F600",  # astral: a surrogate pair in JS
    "\ufeff\ufffe\ufffd\u0300",
    '"double" \'single\' \\back\\slash\\ /slash/ \\"\\u0041',
    "".join(chr(i) for i in range(32)) + "\x7f\x80\x9f",
    '{"a": [1, 2, "three"], "b": null}',
    "x" * 65536,
    "%20",
    "100%",
    "</script>",
    "<!-- -->&amp;<b>",
    " leading and trailing ",
    "a+b=c&d",
]

CROSS_ORIGIN = [
    "websocket",
    "xhr-streaming",
    "eventsource",
    "iframe-eventsource",
    "iframe-htmlfile",
    "xhr-polling",
    "iframe-xhr-polling",
    "jsonp-polling",
]
SAME_ORIGIN = ["htmlfile"]


class BrowserDriver:
    """``node browser_driver.js``: one Chromium, one request at a time, every wait bounded."""

    def __init__(self, chromium: Path) -> None:
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
        self.proc = subprocess.Popen(
            [shutil.which("node") or "node", str(HERE / "browser_driver.js"), str(chromium)],
            cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", env=env, start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=200)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.next_id = 0
        hello = self._next(LAUNCH_TIMEOUT)
        if not hello.get("ready"):
            self.close()
            raise RuntimeError(f"Chromium did not start: {hello}\n{self.stderr_text()}")
        self.version = hello["version"]

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def stderr_text(self) -> str:
        return "".join(self.stderr)[-4000:]

    def _next(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"browser driver silent for {timeout}s\n{self.stderr_text()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"browser driver exited ({self.proc.poll()})\n{self.stderr_text()}"
                )
            if line.strip():
                return dict(json.loads(line))

    def run(self, url: str, base: str, transport: str, messages: list[str]) -> dict[str, Any]:
        self.next_id += 1
        req = {
            "id": self.next_id, "url": url, "base": base, "transport": transport,
            "messages": messages, "timeout": STAGE_TIMEOUT_MS,
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        while True:
            answer = self._next(CALL_TIMEOUT)
            if answer.get("id") == self.next_id:
                return answer

    def close(self) -> None:
        """Close the browser; kill the driver's process group if it does not exit."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Chromium's helpers share the driver's session; leave none behind.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture(scope="module")
def browser(node_modules: Path, chromium: Path) -> Iterator[BrowserDriver]:
    driver = BrowserDriver(chromium)
    try:
        yield driver
    finally:
        driver.close()


def _static(node_modules: Path) -> cli.StaticFiles:
    client = node_modules / "sockjs-client" / "dist" / "sockjs.min.js"
    return cli.StaticFiles({
        CLIENT_PATH: ("application/javascript; charset=UTF-8", client.read_bytes()),
        PAGE_PATH: ("text/html; charset=UTF-8", (HERE / "browser_page.html").read_bytes()),
    })


@pytest.fixture(scope="module")
def servers(loop_kind: str, node_modules: Path) -> Iterator[tuple[ServerThread, ServerThread]]:
    """(SockJS test server that also serves the client and page, page-only server)."""
    static = _static(node_modules)
    sockjs = ServerThread(lambda: cli.testserver(CLIENT_PATH), loop_kind, fallback=static)
    pages = ServerThread(list, loop_kind, fallback=static)
    sockjs.start()
    try:
        pages.start()
        try:
            yield sockjs, pages
        finally:
            pages.stop()
    finally:
        sockjs.stop()


def _check(answer: dict[str, Any], transport: str, page_origin: str) -> None:
    log = "\n".join(answer.get("log", []))[-6000:]
    assert "error" not in answer, f"{answer['error']}\npage log:\n{log}"
    got = answer["result"]
    assert got["version"] == "1.6.1"
    assert got["origin"] == page_origin
    assert got["transport"] == transport, log
    echo = got["echo"]
    assert len(echo) == len(MESSAGES), log
    for i, (sent, back) in enumerate(zip(MESSAGES, echo)):
        assert back == sent, (
            f"message {i} (len {len(sent)}) came back as len {len(back)}: "
            f"{back[:200]!r} != {sent[:200]!r}"
        )
    assert got["echoCloseCode"] == 1000
    assert got["closeTransport"] == transport, log
    assert (got["closeCode"], got["closeReason"]) == (3000, "Go away!"), log


@pytest.mark.parametrize("transport", CROSS_ORIGIN)
def test_cross_origin(
    browser: BrowserDriver, servers: tuple[ServerThread, ServerThread], transport: str
) -> None:
    sockjs, pages = servers
    assert pages.url != sockjs.url  # another port: another origin
    answer = browser.run(pages.url + PAGE_PATH, sockjs.url, transport, MESSAGES)
    _check(answer, transport, pages.url)


@pytest.mark.parametrize("transport", SAME_ORIGIN)
def test_same_origin(
    browser: BrowserDriver, servers: tuple[ServerThread, ServerThread], transport: str
) -> None:
    sockjs, _ = servers
    answer = browser.run(sockjs.url + PAGE_PATH, sockjs.url, transport, MESSAGES)
    _check(answer, transport, sockjs.url)
