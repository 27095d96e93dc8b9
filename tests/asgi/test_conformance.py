"""The project's protocol tests (tests/integration), re-run unchanged against
fastsockjs.asgi.SockJSApp under uvicorn --http h11 (see conftest.py's ``ts``), with
each of uvicorn's three WebSocket implementations.

A few are decided by the ASGI server before the application sees the request;
they are listed (with the reason) in EXCLUDED and in docs/asgi.md.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from fastsockjs import apps
from fastsockjs.asgi import SockJSApp
from tests.asgi.support import AsgiServerThread, UvicornThread
from tests.helpers import RawWebSocket, close_code, request
from tests.integration import (
    test_hardening,
    test_http_transports,
    test_static_endpoints,
    test_websocket,
)

#: uvicorn's legacy ``websockets`` implementation is tested on purpose: its
#: deprecation warnings (uvicorn's and websockets') are expected.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated"),
    pytest.mark.filterwarnings("ignore:remove second argument of ws_handler"),
]

#: Tests the ASGI server answers itself: nothing SockJSApp can do about them.
EXCLUDED = {
    "test_hixie76_headers_before_nonce":
        "draft-76 (hixie-76) WebSocket handshake: uvicorn's WebSocket implementations only "
        "speak RFC 6455 and refuse the handshake before the application runs",
    "test_draft76_client_that_never_sends_its_nonce_is_closed":
        "draft-76 (hixie-76) WebSocket handshake: refused by the ASGI server (see above)",
    "test_http10_fixed_response":
        "HTTP/1.0 keep-alive: h11 closes HTTP/1.0 connections after every response",
    "test_malformed_http_gets_400_and_server_survives":
        "malformed HTTP never reaches the application: the ASGI server's parser answers it",
    "test_long_url_414_and_huge_headers_431":
        "request-line and header-block limits are the ASGI server's (h11 answers 400)",
    "test_slow_request_gets_408_and_idle_keepalive_is_closed":
        "request and keep-alive timeouts are the ASGI server's (uvicorn --timeout-keep-alive)",
    "test_ws_peer_that_never_pongs_is_dropped":
        "WebSocket keep-alive pings are the ASGI server's (uvicorn --ws-ping-interval / "
        "--ws-ping-timeout); the ws_ping_* options do not apply",
}

#: Decided by uvicorn's wsproto-based WebSocket implementation (the flavour
#: with ws="wsproto"), which answers differently from the websockets-based one.
EXCLUDED_WSPROTO = {
    "test_bad_frames_close_with_the_right_code":
        "protocol errors in client frames: wsproto drops the connection without sending "
        "the close frame (code 1002 / 1007) the test expects",
}

#: Decided by uvicorn's websockets-based implementation (ws="websockets-sansio").
EXCLUDED_WEBSOCKETS = {
    "test_raw_websocket_requires_rfc6455":
        "unsupported Sec-WebSocket-Version: websockets answers 400 itself (RFC 6455 4.4 and "
        "the test want 426, as SockJSApp and wsproto answer)",
}

#: A POST carrying ``Upgrade: websocket`` goes to uvicorn's WebSocket layer, which
#: answers it before SockJSApp sees the request: the sansio websockets implementation
#: with 405 (but with a body and a Content-Type, where the protocol suite wants a bare
#: 405), the legacy one and wsproto with 400. Natively (and without the Upgrade header
#: here too) it is SockJS's bare 405. docs/asgi.md says so.
POST_UPGRADE_STATUS = {"websockets-sansio": 405, "websockets": 400, "wsproto": 400}

#: Tests that build their own native server: their ASGI twins are below.
NOT_REUSED = {"test_oversized_message_closes_1009"}


def _reuse(*modules: Any) -> None:
    for module in modules:
        for name, obj in vars(module).items():
            if not name.startswith("test_") or not callable(obj) or name in NOT_REUSED:
                continue
            globals()[name] = _skipped(name) if name in EXCLUDED else obj


def _skipped(name: str) -> Any:
    @pytest.mark.skip(reason="the ASGI server decides: " + EXCLUDED[name])
    def skipped() -> None:
        pass

    skipped.__name__ = name
    return skipped


_reuse(test_static_endpoints, test_http_transports, test_websocket, test_hardening)


@pytest.fixture(autouse=True)
def _asgi_server_threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that start their own ServerThread get SockJSApp under uvicorn instead."""
    if getattr(request.function, "__module__", "") == test_hardening.__name__:
        ws = request.getfixturevalue("flavour")[1]

        def thread(*args: Any, **kwargs: Any) -> AsgiServerThread:
            return AsgiServerThread(*args, ws=ws, **kwargs)

        monkeypatch.setattr(test_hardening, "ServerThread", thread)


@pytest.fixture(scope="module")
def guarded(flavour: tuple[str, str]) -> Any:
    st = AsgiServerThread(
        lambda: [apps.echo(prefix="/g", allowed_origins=[test_hardening.ALLOWED])],
        flavour[0], ws=flavour[1]).start()
    yield st
    st.stop()


@pytest.fixture(autouse=True)
def _per_flavour_exclusions(request: pytest.FixtureRequest) -> None:
    name = getattr(request.node, "originalname", request.node.name)
    if name in EXCLUDED_WSPROTO and request.getfixturevalue("flavour")[1] == "wsproto":
        pytest.skip("uvicorn's wsproto implementation decides: " + EXCLUDED_WSPROTO[name])
    if name in EXCLUDED_WEBSOCKETS and request.getfixturevalue("flavour")[1] != "wsproto":
        pytest.skip("uvicorn's websockets implementation decides: " + EXCLUDED_WEBSOCKETS[name])


def test_post_with_upgrade_is_answered_by_uvicorn(
    ts: UvicornThread, flavour: tuple[str, str]
) -> None:
    path = f"/echo/000/{uuid.uuid4()}/websocket"
    upgrade = request(ts.port, "POST", path, headers={"Upgrade": "WebSocket",
                                                      "Connection": "Upgrade"})
    assert upgrade.status == POST_UPGRADE_STATUS[flavour[1]]
    bare = request(ts.port, "POST", path)  # this one reaches SockJSApp
    assert (bare.status, bare["content-type"], bare.body) == (405, None, b"")
    assert bare["allow"] == "GET"
    # The upgrade's answer is not SockJSApp's.
    assert (upgrade.status, upgrade["content-type"], upgrade.body) != (405, None, b"")


def test_oversized_message_closes_1009_asgi(flavour: tuple[str, str]) -> None:
    """As test_websocket.test_oversized_message_closes_1009, under uvicorn: the
    fragmented message over max_message_size is refused by SockJSApp; the
    announced 1 TiB frame by the server itself (websockets refuses it from its
    header, against ws_max_size; wsproto waits for the payload, so not there)."""

    def make() -> tuple[SockJSApp, list[Any]]:
        servers = [apps.echo(prefix="/echo", max_message_size=1000)]
        return SockJSApp(*servers, shutdown_timeout=0.5), servers

    st = UvicornThread(make, flavour[0], ws=flavour[1]).start()
    try:
        raw = RawWebSocket(st.port, f"/echo/000/{uuid.uuid4()}/websocket")
        assert raw.recv_text() == "o"
        raw.send_text(json.dumps(["x" * 990]))
        assert raw.recv_text() == "a" + json.dumps(["x" * 990])
        raw.close()
        if flavour[1] != "wsproto":
            raw = RawWebSocket(st.port, f"/echo/000/{uuid.uuid4()}/websocket")
            assert raw.recv_text() == "o"
            raw.send_raw(bytes([0x81, 0xFF]) + (1 << 40).to_bytes(8, "big") + b"\0\0\0\0")
            frame = raw.recv_frame()
            assert frame is not None and close_code(frame[1])[0] == 1009
            raw.close()
        raw = RawWebSocket(st.port, f"/echo/000/{uuid.uuid4()}/websocket")
        assert raw.recv_text() == "o"
        raw.send_frame(1, b"[" + b'"' + b"y" * 600, fin=False)
        raw.send_frame(0, b"y" * 600 + b'"]', fin=True)
        frame = raw.recv_frame()
        assert frame is not None and close_code(frame[1])[0] == 1009
        raw.close()
    finally:
        st.stop()


def test_graceful_shutdown_closes_every_session_once_asgi(flavour: tuple[str, str]) -> None:
    """As test_hardening's (which runs above through the Listener), through
    SockJSApp.shutdown(): what the lifespan shutdown runs."""
    import asyncio

    from tests.helpers import RawHttp, request

    closes: list[str] = []

    def make() -> list[Any]:
        server = apps.echo(prefix="/s")
        server.on("connection", lambda c: c.on("close", lambda: closes.append(c.protocol)))
        return [server]

    st = AsgiServerThread(make, flavour[0], ws=flavour[1]).start()
    try:
        sid = test_hardening.sid
        ws = RawWebSocket(st.port, sid("/s") + "/websocket")
        assert ws.recv_text() == "o"
        raw = RawWebSocket(st.port, "/s/websocket")
        stream = RawHttp(st.port)
        stream.request("POST", sid("/s") + "/xhr_streaming")
        stream.read_chunk()
        assert stream.read_chunk() == b"o\n"
        assert request(st.port, "POST", sid("/s") + "/xhr").body == b"o\n"
        assert st.loop is not None
        fut = asyncio.run_coroutine_threadsafe(st.app.shutdown(1.0), st.loop)
        assert ws.recv_text() == 'c[1001,"Server shutting down"]'
        assert stream.read_chunk() == b'c[1001,"Server shutting down"]\n'
        frame = raw.recv_frame()
        assert frame is not None and close_code(frame[1]) == (1001, "Server shutting down")
        fut.result(timeout=5)
        assert sorted(closes) == sorted(["websocket", "websocket-raw", "xhr-streaming",
                                         "xhr-polling"])
    finally:
        st.stop()
