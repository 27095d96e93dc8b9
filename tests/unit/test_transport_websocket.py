"""transports/websocket.py: the SockJS WebSocket receiver and the raw WebSocket
session, driven through a fake exchange and a fake socket (what the host's
WebSocket offers them), with a real Mount on a fake clock."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fastsockjs.protocol.http import HttpError
from fastsockjs.protocol.routing import Route
from fastsockjs.protocol.session import ReadyState
from fastsockjs.protocol.websocket import CLOSE_UNSUPPORTED
from fastsockjs.transports.websocket import (
    RawSession,
    WebSocketReceiver,
    raw_websocket,
    sockjs_websocket,
)
from tests.unit.fakes import Mounted

ROUTE = Route("websocket", "000", "s1")
HANDSHAKE = {
    "upgrade": "websocket",
    "connection": "keep-alive, Upgrade",
    "sec-websocket-version": "13",
    "sec-websocket-key": base64.b64encode(b"k" * 16).decode(),
}


class FakeCodec:
    """Builds 'frames' as tagged bytes, counting how many it built."""

    def __init__(self, key: object = "rfc6455") -> None:
        self.frame_key = key
        self.built = 0

    def text(self, text: str) -> bytes:
        self.built += 1
        return b"FRAME:" + text.encode()


class FakeWS:
    """What the host's WebSocket offers its application: sends, close, abort, flow."""

    def __init__(self, codec: FakeCodec | None = None) -> None:
        self.codec = codec
        self.sent: list[Any] = []
        self.paused = False
        self.write_paused = False
        self.buffered = 0
        self.flow = self

    def send_text(self, text: str) -> None:
        self.sent.append(text)

    def send_encoded(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        self.sent.append(("close", code, reason))

    def abort(self) -> None:
        self.sent.append("abort")


def upgrade(m: Mounted, headers: dict[str, str] | None = None) -> Any:
    ex = m.call(sockjs_websocket, "GET", "/echo/000/s1/websocket", route=ROUTE, upgrade=True,
                headers=headers if headers is not None else HANDSHAKE)
    assert ex.upgraded is not None
    return ex.upgraded


def opened(m: Mounted, codec: FakeCodec | None = None) -> tuple[WebSocketReceiver, FakeWS]:
    app, *_ = upgrade(m)
    ws = FakeWS(codec)
    app.on_open(ws)
    m.clock.end_turn()
    return app, ws


# -- the handshake ----------------------------------------------------------------------
def test_the_handshake_upgrades_with_the_mounts_limits() -> None:
    m = Mounted(max_message_size=5000, ws_ping_interval=10, ws_ping_timeout=3)
    app, max_size, hixie76, ping = upgrade(m)
    assert isinstance(app, WebSocketReceiver)
    assert (max_size, hixie76, ping) == (5000, False, (10.0, 3.0))
    assert Mounted(ws_ping_interval=None).call(
        sockjs_websocket, "GET", "/", route=ROUTE, upgrade=True, headers=HANDSHAKE
    ).upgraded[3] is None  # type: ignore[index]


def test_a_draft_76_handshake_is_flagged() -> None:
    keys = {"upgrade": "WebSocket", "connection": "Upgrade", "sec-websocket-key1": "1 2",
            "sec-websocket-key2": "3 4"}
    assert upgrade(Mounted(), keys)[2] is True


@pytest.mark.parametrize(("change", "status"), [
    ({"upgrade": "h2c"}, 400),
    ({"connection": "keep-alive"}, 400),
    ({"sec-websocket-version": "8"}, 426),
    ({"sec-websocket-key": "short"}, 400),
])
def test_a_bad_handshake_is_refused_before_any_session(change: dict[str, str], status: int) -> None:
    m = Mounted()
    with pytest.raises(HttpError) as err:
        upgrade(m, {**HANDSHAKE, **change})
    assert err.value.status == status
    assert m.mount.live_sessions == 0


def test_permessage_deflate_is_negotiated_only_when_enabled() -> None:
    offer = {**HANDSHAKE, "sec-websocket-extensions": "permessage-deflate"}
    for compression, agreed in ((None, False), (True, True)):
        m = Mounted(websocket_compression=compression)
        app, *_ = upgrade(m, offer)
        assert (app.request.ws_deflate is not None) is agreed


def test_capacity_refuses_a_new_websocket_with_503() -> None:
    m = Mounted(max_sessions=1)
    opened(m)
    with pytest.raises(HttpError) as err:
        upgrade(m)
    assert err.value.status == 503 and ("Retry-After", "5") in err.value.headers


# -- SockJS framing over the socket ---------------------------------------------------------
def test_open_frame_then_connection() -> None:
    m = Mounted()
    _app, ws = opened(m)
    assert ws.sent == ["o"]
    assert len(m.conns) == 1 and m.conns[0].protocol == "websocket"
    assert m.mount.live_sessions == 1


def test_client_messages_arrays_single_values_and_empty() -> None:
    m = Mounted()
    app, _ws = opened(m)
    app.on_text('["a",{"b":2}]')
    app.on_text('"single"')
    app.on_text("")
    app.on_text("[]")
    assert m.received == ["a", {"b": 2}, "single"]


@pytest.mark.parametrize("bad", ["[", '["a"', "[NaN]", "nope"])
def test_broken_framing_closes_with_3000_and_drops_the_socket(bad: str) -> None:
    m = Mounted()
    app, ws = opened(m)
    app.on_text(bad)
    assert ws.sent == ["o", 'c[3000,"Broken framing."]', "abort"]
    app.on_closed()  # what the host reports after the abort
    assert m.closed == [m.conns[0].id] and m.mount.live_sessions == 0


def test_binary_is_broken_framing_too() -> None:
    m = Mounted()
    app, ws = opened(m)
    app.on_binary(b"\x00")
    assert ws.sent[1:] == ['c[3000,"Broken framing."]', "abort"]


def test_what_one_turn_wrote_leaves_as_one_frame() -> None:
    m = Mounted()
    _app, ws = opened(m)
    m.conns[0].write("x")
    m.conns[0].write("y")
    m.clock.end_turn()
    assert ws.sent[1:] == ['a["x","y"]']


def test_heartbeats_on_the_clock() -> None:
    m = Mounted(heartbeat_delay=7)
    _app, ws = opened(m)
    m.clock.advance(7.1)
    assert ws.sent == ["o", "h"]


def test_a_broadcast_builds_the_websocket_frame_once_for_sessions_sharing_a_codec_key() -> None:
    m = Mounted()
    shared = FakeCodec("k1")
    other = FakeCodec("k2")
    sockets = [opened(m, codec)[1] for codec in (shared, shared, other)]
    assert m.server.broadcast("m", m.conns) == 3
    m.clock.end_turn()
    assert [ws.sent[1:] for ws in sockets] == [[b'FRAME:a["m"]']] * 3
    assert (shared.built, other.built) == (1, 1)


def test_closing_from_the_server_sends_the_close_frame_then_closes_the_socket() -> None:
    m = Mounted()
    app, ws = opened(m)
    m.conns[0].write("last")
    m.conns[0].close(3000, "Go away!")
    assert ws.sent[1:] == ['a["last"]', 'c[3000,"Go away!"]', ("close", 1000, "Normal closure")]
    app.on_closed()
    assert m.closed == [m.conns[0].id]


def test_the_socket_closing_ends_the_session_at_once_and_lets_go_of_the_socket() -> None:
    m = Mounted(disconnect_delay=5)
    app, ws = opened(m)
    app.on_closed()
    assert m.closed == [m.conns[0].id]  # no disconnect delay for a WebSocket
    assert app.ws is None and m.mount.live_sessions == 0
    app.on_text('["late"]')
    assert m.received == []


# -- raw WebSocket ----------------------------------------------------------------------------
def raw(m: Mounted, headers: dict[str, str] | None = None) -> tuple[RawSession, FakeWS]:
    ex = m.call(raw_websocket, "GET", "/echo/websocket", upgrade=True,
                headers=headers if headers is not None else HANDSHAKE)
    assert ex.upgraded is not None
    session = ex.upgraded[0]
    ws = FakeWS()
    session.on_open(ws)
    return session, ws


def test_raw_text_in_and_out_without_framing() -> None:
    m = Mounted()
    session, ws = raw(m)
    assert ws.sent == []  # no open frame
    assert len(m.conns) == 1 and m.conns[0].protocol == "websocket-raw"
    session.on_text('["not decoded"]')
    assert m.received == ['["not decoded"]']
    m.conns[0].write("out")
    assert ws.sent == ["out"]  # sent at once: raw sessions have no outbox
    stats = m.mount.stats()
    assert (stats["messages_in"], stats["messages_out"]) == (1, 1)


def test_raw_binary_is_refused_with_1003() -> None:
    m = Mounted()
    session, ws = raw(m)
    session.on_binary(b"x")
    assert ws.sent == [("close", CLOSE_UNSUPPORTED, "Text messages only.")]
    assert session.state is ReadyState.CLOSING
    session.on_closed()
    assert m.closed == [m.conns[0].id] and m.mount.live_sessions == 0


def test_raw_refuses_draft_76() -> None:
    keys = {"upgrade": "WebSocket", "connection": "Upgrade", "sec-websocket-key1": "1 2",
            "sec-websocket-key2": "3 4"}
    with pytest.raises(HttpError) as err:
        raw(Mounted(), keys)
    assert err.value.status == 400


@pytest.mark.parametrize(("policy", "state", "dropped"), [
    ("close", ReadyState.CLOSING, 1),
    ("drop", ReadyState.OPEN, 1),
])
def test_a_raw_client_that_cannot_keep_up(policy: str, state: ReadyState, dropped: int) -> None:
    m = Mounted(max_outbox_bytes=100, slow_client_policy=policy)
    session, ws = raw(m)
    ws.paused = True
    ws.buffered = 95
    assert m.conns[0].write("12345") is True  # 100 bytes: still within the bound
    assert m.conns[0].write("123456") is False
    assert session.state is state and m.mount.stats()["dropped"] == dropped
    assert ws.sent[0] == "12345"
