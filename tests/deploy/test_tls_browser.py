"""The chat page over https in headless Chromium, served by `fastsockjs chat
--ssl-certfile ...`: Chromium trusts the test certificate only through
``--ignore-certificate-errors-spki-list`` (its public-key pin), the page, the
served sockjs-client and every transport's requests are https/wss (no mixed
content), and two pages talk."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.cluster import ROOT, free_port
from tests.deploy.test_chat_browser import Browser, client_file
from tests.helpers import Proc, TlsFiles, https_request, wait_for

pytestmark = pytest.mark.realclient


@pytest.fixture(scope="module")
def https_chat(
    node_modules: Path, tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    port = free_port()
    proc = Proc("chat-tls", [
        sys.executable, "-m", "fastsockjs", "chat", "--port", str(port), *tls.cli_args(),
        "--sockjs-client", str(client_file(node_modules)),
    ], tmp_path_factory.mktemp("chat-tls") / "chat.log", cwd=ROOT)
    try:
        wait_for(lambda: https_request(port, "GET", "/", tls.client_context()).status == 200,
                 20, f"the chat page over https\n{proc.log_text()}")
        yield port
    finally:
        proc.stop(10)


@pytest.mark.parametrize("transport", ["websocket", "xhr-streaming", "xhr-polling"])
def test_chat_page_over_https(
    https_chat: int, tls: TlsFiles, node_modules: Path, chromium: Path, transport: str
) -> None:
    b = Browser(node_modules, chromium,
                chromium_args=[f"--ignore-certificate-errors-spki-list={tls.spki}"])
    try:
        base = f"https://127.0.0.1:{https_chat}/?room=tls-{transport}&transports={transport}"
        ann = b("open", "ann", url=base + "&nick=ann")
        assert ann["transport"] == transport, ann
        b("open", "bob", url=base + "&nick=bob")
        b("say", "ann", text="over TLS")
        b("wait_texts", "bob", texts=["over TLS"])
        log = b("log", "ann")["log"]
        assert not [line for line in log if "Mixed Content" in line or "requestfailed" in line], log
    finally:
        b.close()


def test_untrusted_without_the_pin(
    https_chat: int, node_modules: Path, chromium: Path
) -> None:
    """Without the pin, Chromium refuses the certificate: the test above used TLS."""
    b = Browser(node_modules, chromium, timeout_ms=5000)
    try:
        with pytest.raises(AssertionError, match="ERR_CERT"):
            b("open", "eve", url=f"https://127.0.0.1:{https_chat}/?room=x&nick=eve")
    finally:
        b.close()
