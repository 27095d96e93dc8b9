"""The native server forwarding every request outside its SockJS prefixes to
an ASGI (FastAPI) application: one port, both served."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websocket  # websocket-client

pytest.importorskip("fastapi")

from fastsockjs import Listener, apps
from fastsockjs.aio import AsgiFallback, forward
from fastsockjs.asgi import is_asgi_app
from tests.asgi.webapp import make_fastapi
from tests.helpers import RawHttp, ServerThread, close_code, request, wait_for


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def native(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    app = make_fastapi()
    # The ASGI app itself as the fallback: wrapped with forward() on first use.
    st = ServerThread(lambda: [apps.echo(prefix="/echo"), apps.close(prefix="/close")],
                      request.param, fallback=app).start()
    st.fastapi = app  # type: ignore[attr-defined]
    yield st
    shutdown_fallback(st)
    st.stop()


def shutdown_fallback(st: ServerThread) -> None:
    """Run the app's lifespan shutdown (the Listener leaves that to us)."""
    assert st.listener is not None and st.loop is not None
    fallback = st.listener.fallback
    if isinstance(fallback, AsgiFallback):
        asyncio.run_coroutine_threadsafe(fallback.shutdown(), st.loop).result(5)


def test_asgi_detection() -> None:
    assert is_asgi_app(make_fastapi())

    async def asgi(scope: Any, receive: Any, send: Any) -> None: ...

    assert is_asgi_app(asgi)
    assert not is_asgi_app(lambda request: (200, [], b""))
    assert not is_asgi_app(None)


def test_fastapi_routes_on_the_native_port(native: ServerThread) -> None:
    r = request(native.port, "GET", "/api/hello")
    assert r.status == 200
    assert r["content-type"] == "application/json"
    assert int(r["content-length"] or 0) == len(r.body)
    # Lifespan startup ran (lazily, before the first request the app got).
    assert json.loads(r.body) == {"hello": "world", "path": "/api/hello",
                                  "lifespan": "from lifespan"}
    r = request(native.port, "POST", "/api/echo", b"payload", {"Content-Type": "text/x"})
    assert json.loads(r.body) == {"got": "payload", "ctype": "text/x"}
    assert request(native.port, "GET", "/api/plain").body == b"plain text"
    r = request(native.port, "GET", "/nothing-here")
    assert r.status == 404 and json.loads(r.body) == {"detail": "Not Found"}
    r = request(native.port, "PUT", "/api/hello")
    assert r.status == 405


def test_sockjs_on_the_same_port(native: ServerThread) -> None:
    assert request(native.port, "GET", "/echo").body == b"Welcome to SockJS!\n"
    url = f"/echo/000/{uuid.uuid4()}"
    assert request(native.port, "POST", url + "/xhr").body == b"o\n"
    assert request(native.port, "POST", url + "/xhr_send", '["x"]').status == 204
    assert request(native.port, "POST", url + "/xhr").body == b'a["x"]\n'
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{native.port}/echo/000/{uuid.uuid4()}/websocket", timeout=5)
    assert ws.recv() == "o"
    ws.send('["y"]')
    assert ws.recv() == 'a["y"]'
    ws.close()


def test_keep_alive_mixes_both(native: ServerThread) -> None:
    c = RawHttp(native.port)
    for path in ("/api/plain", "/echo", "/api/plain"):
        status, h = c.request("GET", path)
        assert status == 200
        c.read_exact(int(h["content-length"]))
    c.close()


def test_streaming_response_is_streamed(native: ServerThread) -> None:
    c = RawHttp(native.port)
    status, h = c.request("GET", "/api/stream")
    assert status == 200
    assert h["transfer-encoding"] == "chunked" and "content-length" not in h
    # The first chunk arrives while the app is still waiting to produce the rest.
    assert c.read_chunk() == b"first\n"
    assert request(native.port, "POST", "/api/release").status == 200
    assert c.read_chunk() == b"second\n"
    assert c.read_chunk() == b"third\n"
    assert c.read_chunk() == b""
    # Keep-alive after a streamed answer.
    status, h = c.request("GET", "/api/plain")
    assert status == 200 and c.read_exact(10) == b"plain text"
    c.close()


def test_client_disconnect_reaches_the_app(native: ServerThread) -> None:
    events = native.fastapi.state.events  # type: ignore[attr-defined]
    before = native.call(lambda: events["stream_closed"])
    c = RawHttp(native.port)
    c.request("GET", "/api/forever")
    assert c.read_chunk() == b"tick\n"
    c.close()
    wait_for(lambda: native.call(lambda: events["stream_closed"]) != before, 5,
             "the app saw the disconnect")


def test_fastapi_websocket_route_on_the_native_server(native: ServerThread) -> None:
    ws = websocket.create_connection(f"ws://127.0.0.1:{native.port}/ws", timeout=5)
    ws.send("a")
    assert ws.recv() == "echo:a"
    ws.send("ą" * 70000)
    assert ws.recv() == "echo:" + "ą" * 70000
    ws.send("bye")
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert close_code(data) == (4001, "bye")
    ws.close()
    # A route that refuses the handshake: 403, as ASGI servers answer.
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"ws://127.0.0.1:{native.port}/ws-refused", timeout=5)
    assert info.value.status_code == 403
    # And one that does not exist at all.
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"ws://127.0.0.1:{native.port}/no-ws", timeout=5)
    assert info.value.status_code in (403, 404)


def test_explicit_lifespan_with_a_listener() -> None:
    app = make_fastapi()
    events = app.state.events

    async def main() -> None:
        async with forward(app, lifespan="on") as fallback:
            assert isinstance(fallback, AsgiFallback)
            assert events == {"startup": 1, "shutdown": 0, "stream_closed": 0}
            listener = Listener(fallback)
            apps.echo(prefix="/echo").install_handlers(listener)
            await listener.listen("127.0.0.1", 0)
            port = listener.port
            loop = asyncio.get_running_loop()
            r = await loop.run_in_executor(None, request, port, "GET", "/api/hello")
            assert json.loads(r.body)["lifespan"] == "from lifespan"
            r = await loop.run_in_executor(None, request, port, "GET", "/echo")
            assert r.body == b"Welcome to SockJS!\n"
            await listener.shutdown(0.5)
        assert events["startup"] == 1 and events["shutdown"] == 1

    asyncio.run(main())


def test_app_errors_become_500() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/boom":
            raise RuntimeError("boom")
        if scope["type"] == "http" and scope["path"] == "/silent":
            return
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            raise RuntimeError("mid-stream")
        raise RuntimeError("no lifespan here")

    st = ServerThread(lambda: [apps.echo(prefix="/echo")], fallback=forward(broken)).start()
    try:
        assert request(st.port, "GET", "/boom").status == 500
        assert request(st.port, "GET", "/silent").status == 500
        c = RawHttp(st.port)
        status, _ = c.request("GET", "/midstream")
        assert status == 200
        assert c.read_chunk() == b"a"
        assert c.closed()  # too late for a status: the connection is ended
        c.close()
        assert request(st.port, "GET", "/echo").status == 200
    finally:
        shutdown_fallback(st)
        st.stop()


def test_failed_lifespan_startup_means_500s() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    st = ServerThread(lambda: [apps.echo(prefix="/echo")], fallback=app).start()
    try:
        for _ in range(2):
            assert request(st.port, "GET", "/x").status == 500
        assert request(st.port, "GET", "/echo").status == 200
    finally:
        st.stop()
