"""The client's sans-I/O core: ids, URLs, frames, the xhr line splitter, the send body."""

from __future__ import annotations

import json

import pytest

from fastsockjs.client.errors import ProtocolError
from fastsockjs.client.protocol import (
    CLOSE,
    HEARTBEAT,
    MESSAGES,
    OPEN,
    SESSION_ID_CHARS,
    Base,
    LineSplitter,
    encode_messages,
    parse_frame,
    server_id,
    session_id,
)
from fastsockjs.client.websocket import CLOSE as WS_CLOSE
from fastsockjs.client.websocket import FAIL, PING, TEXT, ClientCodec


def test_ids_as_sockjs_client_makes_them() -> None:
    servers = {server_id() for _ in range(2000)}
    assert all(len(s) == 3 and s.isdigit() for s in servers)
    assert min(servers) >= "000" and max(servers) <= "999"
    assert len(servers) > 500  # spread over 000-999
    sessions = [session_id() for _ in range(200)]
    assert all(len(s) == 8 and set(s) <= set(SESSION_ID_CHARS) for s in sessions)
    assert len(set(sessions)) == 200


@pytest.mark.parametrize(
    ("url", "expected", "ws"),
    [
        ("http://h:81/echo/", Base("http", "h", 81, "/echo"), "ws://h:81/echo"),
        ("ws://h/echo", Base("http", "h", 80, "/echo"), "ws://h/echo"),
        ("wss://h/a/b", Base("https", "h", 443, "/a/b"), "wss://h/a/b"),
        ("https://[::1]:8443/x", Base("https", "::1", 8443, "/x"), "wss://[::1]:8443/x"),
    ],
)
def test_base_url(url: str, expected: Base, ws: str) -> None:
    base = Base.parse(url)
    assert base == expected
    assert base.url(websocket=True) == ws


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///x", "http://h/x?q=1"])
def test_base_url_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Base.parse(url)


def test_frames() -> None:
    assert parse_frame("o").kind == OPEN
    assert parse_frame("h").kind == HEARTBEAT
    assert parse_frame("h" * 2048).kind == HEARTBEAT  # xhr-streaming's prelude
    assert parse_frame('a["x","\\u2028y"]').messages == ("x", "\u2028y")
    assert parse_frame('m"one"').messages == ("one",)
    frame = parse_frame('c[3000,"Go away!"]')
    assert (frame.kind, frame.code, frame.reason) == (CLOSE, 3000, "Go away!")
    assert parse_frame("a[]").kind == MESSAGES


@pytest.mark.parametrize(
    "text",
    ["", "x", "oo", 'a"x"', "a[1]", "a[", 'a["x"]junk', "a[NaN]", "c[]", 'c["1","x"]',
     "c[true,\"x\"]", "m[1]", "ho"],
)
def test_malformed_frames(text: str) -> None:
    with pytest.raises(ProtocolError, match="malformed frame") as info:
        parse_frame(text)
    assert info.value.code == 1002


def test_line_splitter_across_chunks() -> None:
    data = 'o\na["żółw 😀"]\nh\n'.encode()
    for cut in range(1, len(data)):
        lines = LineSplitter(1000)
        got = lines.feed(data[:cut]) + lines.feed(data[cut:])
        assert got == ["o", 'a["żółw 😀"]', "h"], cut
        assert not lines.pending


def test_line_splitter_limits() -> None:
    lines = LineSplitter(10)
    with pytest.raises(ProtocolError, match="over 10 bytes"):
        lines.feed(b"a" * 11)
    with pytest.raises(ProtocolError, match="UTF-8"):
        LineSplitter(10).feed(b"\xff\n")


def test_send_body_round_trips_through_json() -> None:
    messages = ["plain", 'q"\\', "\u2028\ufeff", "lone \ud800 surrogate", "😀"]
    body = encode_messages(messages)
    assert body.startswith(b"[") and body.decode("utf-8")
    assert json.loads(body) == messages


def test_client_codec() -> None:
    codec = ClientCodec(100)
    server_frames = b"\x81\x01o" + b"\x01\x02a[" + b"\x80\x02]x" + b"\x89\x00"
    events = codec.receive_data(server_frames[:3]) + codec.receive_data(server_frames[3:])
    assert events == [(TEXT, "o"), (TEXT, "a[]x"), (PING, b"")]
    assert codec.receive_data(b"\x88\x02\x03\xe8") == [(WS_CLOSE, (1000, ""))]
    assert ClientCodec(100).receive_data(b"\x82\x00")[0][0] == FAIL  # binary: FAIL
    assert ClientCodec(3).receive_data(b"\x81\x04abcd")[0][0] == FAIL  # too big
    out = ClientCodec.text(b"hi")
    assert out[1] & 0x80  # masked, as a client must
