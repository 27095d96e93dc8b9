"""fastsockjs.testing: serve() and the sockjs_serve fixture under pytest-asyncio
(strict and auto mode) and anyio; Starlette's TestClient against SockJSApp;
and the chat example of docs/testing.md."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastsockjs import Connection, Server, apps
from fastsockjs.client import ConnectionClosed, connect
from fastsockjs.testing import serve


def chat_server() -> Server:
    """docs/testing.md's chat handler: every message goes to every member."""
    server = Server(prefix="/chat")
    members: set[Connection] = set()

    @server.on("connection")
    def joined(conn: Connection) -> None:
        members.add(conn)
        conn.on("data", lambda message: server.broadcast(message, members))
        conn.on("close", lambda: members.discard(conn))

    return server


@pytest.mark.asyncio
async def test_chat_two_clients(sockjs_serve) -> None:  # type: ignore[no-untyped-def]
    async with (
        sockjs_serve(chat_server()) as url,
        connect(url + "/chat", ["websocket"]) as alice,
        connect(url + "/chat", ["xhr-polling"]) as bob,
    ):
        await alice.send("hi bob")
        assert await alice.recv(timeout=5) == "hi bob"
        assert await bob.recv(timeout=5) == "hi bob"
        await bob.send("hi alice")
        assert await alice.recv(timeout=5) == "hi alice"
        assert await bob.recv(timeout=5) == "hi alice"


@pytest.mark.asyncio
async def test_serve_closes_sessions_on_exit() -> None:
    server = apps.echo(prefix="/echo")
    async with serve(server) as url:
        assert url.startswith("http://127.0.0.1:")
        conn = await connect(url + "/echo", ["xhr-streaming"])
        await conn.send("x")
        assert await conn.recv(timeout=5) == "x"
    # Leaving serve() shut the listener down: the session got 1001.
    with pytest.raises(ConnectionClosed) as info:
        await conn.recv(timeout=5)
    assert (info.value.code, info.value.reason) == (1001, "Server shutting down")
    assert server.endpoints == []
    # The same server can be served again.
    async with serve(server) as url2, connect(url2 + "/echo", ["websocket"]) as conn2:
        await conn2.send("y")
        assert await conn2.recv(timeout=5) == "y"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_fixture_under_anyio(sockjs_serve) -> None:  # type: ignore[no-untyped-def]
    async with sockjs_serve(apps.echo(prefix="/echo")) as url, connect(url + "/echo") as conn:
        assert conn.transport == "websocket"
        await conn.send("anyio")
        assert await conn.recv(timeout=5) == "anyio"


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_plugin_is_registered_for_pytest_asyncio_modes(tmp_path: Path, mode: str) -> None:
    """In a fresh pytest run (no conftest): the entry point provides the fixture."""
    source = textwrap.dedent("""\
        import pytest
        from fastsockjs import apps
        from fastsockjs.client import connect

        MARK
        async def test_echo(sockjs_serve):
            async with sockjs_serve(apps.echo(prefix="/echo")) as url:
                async with connect(url + "/echo", ["xhr-polling"]) as conn:
                    await conn.send("ok")
                    assert await conn.recv(timeout=5) == "ok"
        """)
    # Strict mode runs marked tests only; auto mode runs them unmarked.
    mark = "@pytest.mark.asyncio" if mode == "strict" else ""
    (tmp_path / "test_user.py").write_text(source.replace("MARK", mark))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         f"asyncio_mode={mode}", "-o", "asyncio_default_fixture_loop_scope=function",
         "test_user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_starlette_testclient_websocket() -> None:
    """TestClient sends Sec-WebSocket-Key "testserver==": the ASGI server owns the
    handshake, so SockJSApp must not refuse it."""
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from fastsockjs.asgi import SockJSApp

    api = SockJSApp(apps.echo(prefix="/e"))
    with TestClient(api) as client:
        with client.websocket_connect("/e/websocket") as ws:  # raw WebSocket, no framing
            ws.send_text("raw hello")
            assert ws.receive_text() == "raw hello"
        with client.websocket_connect("/e/000/abcdefgh/websocket") as ws:
            assert ws.receive_text() == "o"
            ws.send_text(json.dumps(["framed hello"]))
            assert ws.receive_text() == 'a["framed hello"]'
        # And the HTTP transports, through the same client.
        assert client.post("/e/000/12345678/xhr").text == "o\n"
        assert client.post("/e/000/12345678/xhr_send", content='["x"]').status_code == 204
        assert client.post("/e/000/12345678/xhr").text == 'a["x"]\n'
