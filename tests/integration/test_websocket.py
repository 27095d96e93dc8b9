"""The websocket transport, raw /websocket, hixie-76, and bad frames."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid

import pytest
import websocket  # websocket-client

from fastsockjs._frames_py import quote
from tests.helpers import RawHttp, RawWebSocket, ServerThread, close_code, request


def ws_url(ts: ServerThread, prefix: str = "/echo") -> str:
    return f"ws://127.0.0.1:{ts.port}{prefix}/000/{uuid.uuid4()}/websocket"


def connect(url: str) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=5)


def test_plain_get_is_400(ts: ServerThread) -> None:
    r = request(ts.port, "GET", "/echo/0/0/websocket")
    assert r.status == 400
    r = request(ts.port, "GET", "/echo/0/0/websocket",
                headers={"Upgrade": "WebSocket", "Connection": "close"})
    assert r.status == 400


def test_echo_over_sockjs_websocket(ts: ServerThread) -> None:
    ws = connect(ws_url(ts))
    assert ws.recv() == "o"
    ws.send('["a"]')
    assert ws.recv() == 'a["a"]'
    ws.send('"single value"')
    assert ws.recv() == 'a["single value"]'
    ws.close()


def test_handshake_headers(ts: ServerThread) -> None:
    raw = RawWebSocket(ts.port, f"/echo/000/{uuid.uuid4()}/websocket",
                       {"Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw=="})
    assert raw.status == 101
    assert raw.headers["sec-websocket-accept"] == "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
    assert raw.headers["upgrade"].lower() == "websocket"
    assert raw.headers["connection"].lower() == "upgrade"
    assert "content-length" not in raw.headers
    raw.close()


def test_empty_messages_and_empty_arrays_are_ignored(ts: ServerThread) -> None:
    ws = connect(ws_url(ts))
    assert ws.recv() == "o"
    ws.send("")
    ws.send("[]")
    ws.send('["a"]')
    assert ws.recv() == 'a["a"]'
    ws.close()


def test_same_session_id_twice_is_two_sessions(ts: ServerThread) -> None:
    url = ws_url(ts)
    ws1, ws2 = connect(url), connect(url)
    assert ws1.recv() == "o" and ws2.recv() == "o"
    ws1.send('["a"]')
    ws2.send('["b"]')
    assert ws1.recv() == 'a["a"]'
    assert ws2.recv() == 'a["b"]'
    ws1.close()
    ws2.close()
    ws3 = connect(url)
    assert ws3.recv() == "o"
    ws3.close()


def test_unicode_and_large_messages(ts: ServerThread) -> None:
    ws = connect(ws_url(ts))
    assert ws.recv() == "o"
    samples = ["ąść \u2028 \U0001F600 \ufeff", '"quotes" \\ and \n newlines', "x" * 65536,
               "".join(chr(c) for c in range(0x20, 0x3000))]
    for s in samples:
        ws.send(json.dumps([s]))
        frame = ws.recv()
        assert frame[0] == "a"
        assert json.loads(frame[1:]) == [s]
        assert frame == "a[" + quote(s) + "]"
    ws.close()


def test_close_from_server_sends_close_frame_then_closes(ts: ServerThread) -> None:
    raw = RawWebSocket(ts.port, f"/close/000/{uuid.uuid4()}/websocket")
    assert raw.recv_text() == "o"
    assert raw.recv_text() == 'c[3000,"Go away!"]'
    frame = raw.recv_frame()
    assert frame is not None and frame[0] == 8
    assert close_code(frame[1]) == (1000, "Normal closure")
    raw.close()


def test_broken_json_sends_close_frame_and_drops(ts: ServerThread) -> None:
    raw = RawWebSocket(ts.port, f"/echo/000/{uuid.uuid4()}/websocket")
    assert raw.recv_text() == "o"
    raw.send_text('["a')
    assert raw.recv_text() == 'c[3000,"Broken framing."]'
    assert raw.recv_frame() is None
    raw.close()


@pytest.mark.parametrize(
    "frame_args, code",
    [
        ((1, b"\xff\xfe", True, True), 1007),  # invalid UTF-8
        ((1, b'["a"]', True, False), 1002),  # client frame not masked
        ((0, b"x", True, True), 1002),  # continuation with nothing to continue
        ((9, b"x" * 126, True, True), 1002),  # control frame too long
        ((3, b"", True, True), 1002),  # reserved opcode
    ],
)
def test_bad_frames_close_with_the_right_code(ts: ServerThread, frame_args, code) -> None:  # type: ignore[no-untyped-def]
    healthy = connect(ws_url(ts))
    assert healthy.recv() == "o"
    raw = RawWebSocket(ts.port, f"/echo/000/{uuid.uuid4()}/websocket")
    assert raw.recv_text() == "o"
    raw.send_frame(*frame_args)
    frame = raw.recv_frame()
    assert frame is not None and frame[0] == 8
    assert close_code(frame[1])[0] == code
    assert raw.recv_frame() is None
    raw.close()
    healthy.send('["still here"]')
    assert healthy.recv() == 'a["still here"]'
    healthy.close()


def test_oversized_message_closes_1009(loop_kind: str) -> None:
    from fastsockjs.apps import echo

    st = ServerThread(lambda: [echo(prefix="/echo", max_message_size=1000)], loop_kind).start()
    try:
        raw = RawWebSocket(st.port, f"/echo/000/{uuid.uuid4()}/websocket")
        assert raw.recv_text() == "o"
        raw.send_text(json.dumps(["x" * 990]))
        assert raw.recv_text() == "a" + json.dumps(["x" * 990])
        # Announce a frame far over the limit: refused from its header alone.
        raw.send_raw(bytes([0x81, 0xFF]) + (1 << 40).to_bytes(8, "big") + b"\0\0\0\0")
        frame = raw.recv_frame()
        assert frame is not None and close_code(frame[1])[0] == 1009
        raw.close()
        # Fragments that add up to too much are refused as well.
        raw = RawWebSocket(st.port, f"/echo/000/{uuid.uuid4()}/websocket")
        assert raw.recv_text() == "o"
        raw.send_frame(1, b"[" + b'"' + b"y" * 600, fin=False)
        raw.send_frame(0, b"y" * 600 + b'"]', fin=True)
        frame = raw.recv_frame()
        assert frame is not None and close_code(frame[1])[0] == 1009
        raw.close()
    finally:
        st.stop()


def test_fragmented_message_and_ping(ts: ServerThread) -> None:
    raw = RawWebSocket(ts.port, f"/echo/000/{uuid.uuid4()}/websocket")
    assert raw.recv_text() == "o"
    raw.send_frame(1, b'["frag', fin=False)
    raw.send_frame(9, b"ping!")  # a control frame may come between fragments
    raw.send_frame(0, "ment ł\"]".encode()[:-2] + b'"]', fin=True)
    assert raw.recv_frame() == (10, b"ping!")
    assert raw.recv_text() == 'a["fragment ł"]'
    raw.send_frame(8, (1000).to_bytes(2, "big"))
    frame = raw.recv_frame()
    assert frame is not None and frame[0] == 8
    raw.close()


def test_hixie76_headers_before_nonce(ts: ServerThread) -> None:
    path = f"/echo/000/{uuid.uuid4()}/websocket"
    http = RawHttp(ts.port)
    key1, key2 = "4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00"
    status, headers = http.request("GET", path, {
        "Connection": "Upgrade", "Upgrade": "WebSocket", "Origin": "http://127.0.0.1",
        "Sec-WebSocket-Key1": key1, "Sec-WebSocket-Key2": key2,
    })
    assert status == 101
    assert headers["sec-websocket-location"] == f"ws://127.0.0.1{path}"
    assert headers["sec-websocket-origin"] == "http://127.0.0.1"
    http.send(b"aaaaaaaa")

    def num(k: str) -> int:
        return int("".join(c for c in k if c.isdigit())) // k.count(" ")

    expected = hashlib.md5(struct.pack(">II", num(key1), num(key2)) + b"aaaaaaaa").digest()
    assert http.read_exact(16) == expected
    assert http.read_exact(3) == b"\x00o\xff"
    http.send(b'\x00["hi"]\xff')
    assert http.read_exact(9) == b'\x00a["hi"]\xff'
    http.close()


def test_raw_websocket_echo_and_close(ts: ServerThread) -> None:
    ws = connect(f"ws://127.0.0.1:{ts.port}/echo/websocket")
    ws.send("Hello world!\uffff")
    assert ws.recv() == "Hello world!\uffff"
    ws.close()
    raw = RawWebSocket(ts.port, "/close/websocket")
    frame = raw.recv_frame()
    assert frame is not None and frame[0] == 8
    assert close_code(frame[1]) == (3000, "Go away!")
    raw.close()


def test_raw_websocket_requires_rfc6455(ts: ServerThread) -> None:
    # RFC 6455 4.4: another version gets 426 and the version we speak.
    for path in ("/echo/websocket", "/echo/000/v1/websocket"):
        for version in ("7", "8", "12"):
            r = request(ts.port, "GET", path, headers={
                "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Version": version, "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw=="})
            assert (r.status, r["sec-websocket-version"]) == (426, "13"), (path, version)


def test_heartbeat_frames_on_idle_receivers(loop_kind: str) -> None:
    from fastsockjs.apps import echo

    st = ServerThread(lambda: [echo(prefix="/hb", heartbeat_delay=0.2)], loop_kind).start()
    try:
        raw = RawWebSocket(st.port, f"/hb/000/{uuid.uuid4()}/websocket")
        assert raw.recv_text() == "o"
        assert raw.recv_text() == "h"
        assert raw.recv_text() == "h"
        raw.close()
        stream = RawHttp(st.port)
        stream.request("POST", f"/hb/000/{uuid.uuid4()}/xhr_streaming")
        stream.read_chunk()
        assert stream.read_chunk() == b"o\n"
        assert stream.read_chunk() == b"h\n"
        stream.close()
        # A held poll is answered with a heartbeat frame, which ends it.
        url = f"/hb/000/{uuid.uuid4()}"
        assert request(st.port, "POST", url + "/xhr").body == b"o\n"
        assert request(st.port, "POST", url + "/xhr").body == b"h\n"
    finally:
        st.stop()
