"""SockJS mounted in a FastAPI app next to normal routes, and a SockJSApp
in front of a FastAPI app (``fallback``), both under uvicorn --http h11."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websocket  # websocket-client

pytest.importorskip("fastapi")

from fastsockjs import apps
from fastsockjs.asgi import SockJSApp
from tests.asgi.support import UvicornThread
from tests.asgi.webapp import make_fastapi, make_fastapi_with_sockjs
from tests.helpers import RawHttp, request


@pytest.fixture(scope="module")
def mounted() -> Iterator[UvicornThread]:
    st = UvicornThread(make_fastapi_with_sockjs).start()
    yield st
    st.stop()


def test_normal_routes_next_to_sockjs(mounted: UvicornThread) -> None:
    r = request(mounted.port, "GET", "/api/hello")
    assert r.status == 200
    assert json.loads(r.body) == {"hello": "world", "path": "/api/hello",
                                  "lifespan": "from lifespan"}
    r = request(mounted.port, "GET", "/nothing-here")
    assert r.status == 404 and json.loads(r.body) == {"detail": "Not Found"}


def test_mounted_sockjs_endpoints(mounted: UvicornThread) -> None:
    for prefix in ("/echo", "/close"):
        r = request(mounted.port, "GET", prefix + "/")
        assert (r.status, r.body) == (200, b"Welcome to SockJS!\n"), prefix
        r = request(mounted.port, "GET", prefix + "/info")
        assert r.status == 200 and json.loads(r.body)["websocket"] is True
        assert request(mounted.port, "GET", prefix + "/a/a").status == 404
    # Starlette's Mount redirects the bare prefix to prefix + "/".
    assert request(mounted.port, "GET", "/echo").status in (307, 308)


def test_mounted_xhr_and_connection_facts(mounted: UvicornThread) -> None:
    url = f"/echo/000/{uuid.uuid4()}"
    assert request(mounted.port, "POST", url + "/xhr").body == b"o\n"
    assert request(mounted.port, "POST", url + "/xhr_send", '["hi"]').status == 204
    assert request(mounted.port, "POST", url + "/xhr").body == b'a["hi"]\n'
    # The connection reports the path the client asked for (root_path included).
    seen = mounted.call(lambda: list(mounted.app.state.seen))
    assert url + "/xhr" in seen
    url = f"/close/000/{uuid.uuid4()}"
    assert request(mounted.port, "POST", url + "/xhr").body == b"o\n"
    assert request(mounted.port, "POST", url + "/xhr").body == b'c[3000,"Go away!"]\n'


def test_mounted_streaming(mounted: UvicornThread) -> None:
    url = f"/echo/000/{uuid.uuid4()}"
    c = RawHttp(mounted.port)
    status, _ = c.request("POST", url + "/xhr_streaming")
    assert status == 200
    assert c.read_chunk() == b"h" * 2048 + b"\n"
    assert c.read_chunk() == b"o\n"
    assert request(mounted.port, "POST", url + "/xhr_send", '["x"]').status == 204
    assert c.read_chunk() == b'a["x"]\n'
    c.close()


def test_mounted_websockets_and_fastapi_websocket(mounted: UvicornThread) -> None:
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{mounted.port}/echo/000/{uuid.uuid4()}/websocket", timeout=5)
    assert ws.recv() == "o"
    ws.send('["a"]')
    assert ws.recv() == 'a["a"]'
    ws.close()
    raw = websocket.create_connection(f"ws://127.0.0.1:{mounted.port}/echo/websocket", timeout=5)
    raw.send("raw!")
    assert raw.recv() == "raw!"
    raw.close()
    plain = websocket.create_connection(f"ws://127.0.0.1:{mounted.port}/ws", timeout=5)
    plain.send("x")
    assert plain.recv() == "echo:x"
    plain.close()


def _fronted() -> tuple[Any, list[Any]]:
    fastapi_app = make_fastapi()
    servers = [apps.echo(prefix="/echo"), apps.close(prefix="/close")]
    app = SockJSApp(*servers, fallback=fastapi_app, shutdown_timeout=0.5)
    app.state = fastapi_app.state  # for the test's eyes only
    return app, servers


def test_sockjs_app_in_front_with_fastapi_fallback() -> None:
    st = UvicornThread(_fronted).start()
    try:
        # Lifespan reached the fallback app through SockJSApp.
        r = request(st.port, "GET", "/api/hello")
        assert json.loads(r.body)["lifespan"] == "from lifespan"
        assert request(st.port, "GET", "/echo").body == b"Welcome to SockJS!\n"
        assert json.loads(request(st.port, "GET", "/api/events").body)["startup"] == 1
        r = request(st.port, "POST", "/api/echo", b"body!", {"Content-Type": "text/x"})
        assert json.loads(r.body) == {"got": "body!", "ctype": "text/x"}
        ws = websocket.create_connection(f"ws://127.0.0.1:{st.port}/ws", timeout=5)
        ws.send("y")
        assert ws.recv() == "echo:y"
        ws.close()
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{st.port}/close/000/{uuid.uuid4()}/websocket", timeout=5)
        assert ws.recv() == "o"
        assert ws.recv() == 'c[3000,"Go away!"]'
        ws.close()
        held = websocket.create_connection(
            f"ws://127.0.0.1:{st.port}/echo/000/{uuid.uuid4()}/websocket", timeout=5)
        assert held.recv() == "o"
    finally:
        st.stop()
    # uvicorn's shutdown ran the lifespan shutdown of both: FastAPI saw its
    # shutdown, and no SockJS session is left (the held one got closed).
    assert st.app.state.events["shutdown"] == 1
    assert all(e.live_sessions == 0 for s in st.servers for e in s.endpoints)
    held.settimeout(5)
    with pytest.raises(Exception):  # noqa: B017 - closed, whichever way the client says it
        for _ in range(3):
            if held.recv() == "":
                raise ConnectionError("closed")
    held.close()


def test_root_path_under_uvicorn() -> None:
    """uvicorn --root-path /proxied: a proxy strips /proxied, the app sees it as root_path."""
    seen: list[str] = []

    def make() -> tuple[Any, list[Any]]:
        echo = apps.echo(prefix="/echo")
        echo.on("connection", lambda conn: seen.append(conn.pathname))
        return SockJSApp(echo, shutdown_timeout=0.5), [echo]

    st = UvicornThread(make, root_path="/proxied").start()
    try:
        assert request(st.port, "GET", "/echo").body == b"Welcome to SockJS!\n"
        url = f"/echo/000/{uuid.uuid4()}"
        assert request(st.port, "POST", url + "/xhr").body == b"o\n"
        assert st.call(lambda: list(seen)) == ["/proxied" + url + "/xhr"]
    finally:
        st.stop()
