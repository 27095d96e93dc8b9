"""The RFC 6455 codec's frame building (fastsockjs/protocol/websocket.py); parsing is
covered through the kernels (test_frames.py) and on live servers (integration)."""

from __future__ import annotations

from fastsockjs.protocol import websocket as wsproto


def test_text_frames_of_lone_surrogates_are_valid_utf8() -> None:
    # A raw-WebSocket write("\ud800") used to raise UnicodeEncodeError from write().
    codec = wsproto.Codec
    assert codec.text("a\ud800b") == codec.text("a\ufffdb")
    assert codec.text("\ud83d\ude00") == codec.text("\U0001f600")  # a pair pairs up
    assert codec.text("plain") == b"\x81\x05plain"
