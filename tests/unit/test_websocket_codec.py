"""The RFC 6455 codec's frame building and handshake checks
(fastsockjs/protocol/websocket.py); parsing is covered through the kernels
(test_frames.py) and on live servers (integration); permessage-deflate in
test_websocket_deflate.py."""

from __future__ import annotations

import pytest

from fastsockjs.protocol import websocket as wsproto
from fastsockjs.protocol.http import HttpError, Request


def test_text_frames_of_lone_surrogates_are_valid_utf8() -> None:
    # A raw-WebSocket write("\ud800") used to raise UnicodeEncodeError from write().
    codec = wsproto.Codec
    assert codec.text("a\ud800b") == codec.text("a\ufffdb")
    assert codec.text("\ud83d\ude00") == codec.text("\U0001f600")  # a pair pairs up
    assert codec.text("plain") == b"\x81\x05plain"


# -- the upgrade request (RFC 6455 4.2.1, 4.4) ---------------------------------------------
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _upgrade(**headers: str) -> Request:
    base = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-key": KEY}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    return Request("GET", "/echo/websocket", {k: v for k, v in base.items() if v}, upgrade=True)


@pytest.mark.parametrize(("headers", "status"), [
    ({"sec_websocket_version": "13"}, None),
    ({"sec_websocket_version": "8"}, 426),  # (hybi-10: used to get 101)
    ({"sec_websocket_version": "12"}, 426),
    ({"sec_websocket_version": "7"}, 426),
    ({"sec_websocket_version": "14"}, 426),
    ({"sec_websocket_version": "13, 8"}, 426),
    ({}, 400),  # no version and no draft-76 keys: malformed
    ({"sec_websocket_version": "13", "sec_websocket_key": "short"}, 400),
    ({"sec_websocket_version": "13", "connection": "keep-alive"}, 400),
])
def test_check_handshake_versions(headers: dict[str, str], status: int | None) -> None:
    request = _upgrade(**headers)
    if status is None:
        assert wsproto.check_handshake(request) == "rfc6455"
        return
    with pytest.raises(HttpError) as info:
        wsproto.check_handshake(request)
    assert info.value.status == status
    if status == 426:
        assert ("Sec-WebSocket-Version", "13") in info.value.headers
        assert ("Upgrade", "websocket") in info.value.headers


def test_hixie76_handshake_unchanged() -> None:
    request = _upgrade(sec_websocket_key="", sec_websocket_key1="4 @1  46546xW%0l 1 5",
                       sec_websocket_key2="12998 5 Y3 1  .P00")
    assert wsproto.check_handshake(request) == "hixie76"
