"""permessage-deflate on a live server, with the ``websockets`` client library
(its own RFC 7692 implementation) on the raw ``/websocket`` endpoint and the
SockJS ``websocket`` transport, on both event loops."""

from __future__ import annotations

import contextlib
import json
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

from fastsockjs import WebSocketCompression, apps
from fastsockjs._frames_py import build_frame
from fastsockjs.protocol import websocket as wsproto
from tests.helpers import RawWebSocket, ServerThread, close_code, wait_for

JSONISH = json.dumps([{"id": i, "user": f"user{i % 7}", "room": "lobby", "text": "hello there"}
                      for i in range(300)])


@pytest.fixture(scope="module")
def st(loop_kind: str) -> Iterator[ServerThread]:
    server = ServerThread(lambda: [
        apps.echo(prefix="/echo", websocket_compression=True),
        apps.echo(prefix="/plain"),
        apps.echo(prefix="/takeover", websocket_compression=WebSocketCompression(
            server_no_context_takeover=False, client_no_context_takeover=False)),
        apps.echo(prefix="/small", websocket_compression=True, max_message_size=10_000),
        apps.broadcast(prefix="/broadcast", websocket_compression=True),
    ], loop_kind).start()
    yield server
    server.stop()


def _endpoint(st: ServerThread, prefix: str) -> Any:
    assert st.listener is not None
    return next(e for e in st.listener.endpoints if e.prefix == prefix)


def _bytes_out(st: ServerThread, prefix: str) -> int:
    return int(st.call(lambda: _endpoint(st, prefix).bytes_out))


def test_raw_endpoint_echo_compressed(st: ServerThread) -> None:
    before = _bytes_out(st, "/echo")
    with connect(f"ws://127.0.0.1:{st.port}/echo/websocket") as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12"
        )
        for _ in range(3):
            ws.send(JSONISH)
            assert ws.recv() == JSONISH
        ws.send("short")
        assert ws.recv() == "short"
    sent = _bytes_out(st, "/echo") - before
    # Three echoes of a ~24 KB JSON array went out in far fewer bytes.
    assert sent < len(JSONISH), (sent, len(JSONISH))


def test_sockjs_endpoint_echo_compressed(st: ServerThread) -> None:
    with connect(f"ws://127.0.0.1:{st.port}/echo/000/{uuid.uuid4()}/websocket") as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        assert ws.recv() == "o"
        ws.send(json.dumps([JSONISH, "two"]))
        assert json.loads(ws.recv()[1:]) == [JSONISH, "two"]


def test_off_by_default(st: ServerThread) -> None:
    with connect(f"ws://127.0.0.1:{st.port}/plain/websocket") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send(JSONISH)
        assert ws.recv() == JSONISH


def test_context_takeover_both_ways(st: ServerThread) -> None:
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
    with connect(f"ws://127.0.0.1:{st.port}/takeover/websocket", extensions=[factory]) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; server_max_window_bits=12"
        )
        for i in range(20):
            message = json.dumps({"n": i, "text": "the same words again " * 5})
            ws.send(message)
            assert ws.recv() == message


def test_fragmented_compressed_message_with_ping_between(st: ServerThread) -> None:
    ws = RawWebSocket(st.port, "/echo/websocket",
                      {"Sec-WebSocket-Extensions": "permessage-deflate"})
    try:
        assert ws.status == 101
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = (z.compress(JSONISH.encode()) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
        third = len(payload) // 3
        mask = b"\x01\x02\x03\x04"
        ws.send_raw(build_frame(wsproto.OP_TEXT, payload[:third], False, mask, True))
        ws.send_frame(wsproto.OP_PING, b"between")
        ws.send_raw(build_frame(wsproto.OP_CONT, payload[third:2 * third], False, mask))
        ws.send_raw(build_frame(wsproto.OP_CONT, payload[2 * third:], True, mask))
        assert ws.recv_frame() == (wsproto.OP_PONG, b"between")
        # The echo comes back compressed: read its raw frame.
        reply = _recv_compressed(ws)
        assert zlib.decompressobj(-12).decompress(reply + b"\x00\x00\xff\xff") == JSONISH.encode()
    finally:
        ws.close()


def _recv_compressed(ws: RawWebSocket) -> bytes:
    from fastsockjs._frames_py import parse_frames

    def frame() -> Any:
        parsed, pos, err = parse_frames(ws.buf, 0, 1 << 30, False, True)
        if parsed:
            return parsed[0], pos
        ws.buf += ws.http.sock.recv(65536)
        return None

    (fin, opcode, payload), _pos = wait_for(frame, 5.0, "a compressed frame", interval=0)
    assert fin and opcode == wsproto.OP_TEXT | wsproto.OP_RSV1
    return bytes(payload)


def test_bomb_closes_1009(st: ServerThread) -> None:
    ws = RawWebSocket(st.port, "/small/websocket",
                      {"Sec-WebSocket-Extensions": "permessage-deflate"})
    try:
        assert ws.status == 101
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = (z.compress(b" " * 5_000_000) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert len(payload) < 10_000  # a frame under the limit...
        ws.send_raw(build_frame(wsproto.OP_TEXT, payload, True, b"abcd", True))
        reply = ws.recv_frame()  # ...whose message is not
        assert reply is not None and reply[0] == wsproto.OP_CLOSE
        assert close_code(reply[1])[0] == 1009
    finally:
        ws.close()


def test_broadcast_is_compressed_once(st: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = wsproto.SharedDeflater.compress

    def counting(self: wsproto.SharedDeflater, data: bytes) -> bytes:
        calls.append(len(data))
        return real(self, data)

    monkeypatch.setattr(wsproto.SharedDeflater, "compress", counting)
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(
                connect(f"ws://127.0.0.1:{st.port}/broadcast/000/{uuid.uuid4()}/websocket"))
            for _ in range(5)
        ]
        for ws in clients:
            assert ws.recv() == "o"
        wait_for(lambda: st.call(lambda: len(_endpoint(st, "/broadcast").ws_live)) >= 5,
                 5.0, "5 sessions")
        calls.clear()
        clients[0].send(json.dumps([JSONISH]))
        for ws in clients:
            assert ws.recv() == "a" + json.dumps([JSONISH])
        assert len(calls) == 1, calls
