#!/usr/bin/env python3
"""Seed inputs for the fuzz targets, and a writer for libFuzzer corpus directories.

    python fuzz/seeds.py /tmp/fastsockjs-corpus     # writes http/ and ws/ under it

Every seed starts with the read-size byte the targets expect (0 = one read).
"""

from __future__ import annotations

import hashlib
import os
import sys

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x01\x02\x03\x04"


def _mask(payload: bytes) -> bytes:
    return bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    return head + (MASK + _mask(payload) if masked else payload)


def upgrade(path: bytes) -> bytes:
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def post(path: bytes, body: bytes, ctype: bytes = b"text/plain") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def get(path: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


WS_FRAMES = [
    frame(1, b'["a","b"]'),
    frame(1, b'"single"'),
    frame(1, b"["),
    frame(1, b"\xff\xfe"),
    frame(2, b"\x00\x01"),
    frame(9, b"ping"),
    frame(10, b"pong"),
    frame(8, b"\x03\xe8bye"),
    frame(8, b""),
    frame(8, b"\x03"),
    frame(1, b'["a', fin=False) + frame(9, b"") + frame(0, b'b"]'),
    frame(1, b'["\xce', fin=False) + frame(0, b'\xba"]'),
    frame(1, b'["x"]', masked=False),
    frame(0, b"x"),
    frame(3, b""),
    bytes((0x81, 0xFF)) + (1 << 40).to_bytes(8, "big") + MASK,
    bytes((0x81, 0xFE, 0x00, 0x05)) + MASK + _mask(b'["a"]'),
]

HTTP = [
    get(b"/echo"),
    get(b"/echo/info"),
    get(b"/echo/iframe.html"),
    get(b"/echo/iframe.html", b"If-None-Match: x\r\n"),
    b"OPTIONS /echo/info HTTP/1.1\r\nOrigin: http://a\r\nAccess-Control-Request-Headers: x\r\n\r\n",
    post(b"/echo/000/s1/xhr", b"") + post(b"/echo/000/s1/xhr_send", b'["a"]') + post(b"/echo/000/s1/xhr", b""),
    post(b"/echo/000/s2/xhr_streaming", b""),
    get(b"/echo/000/s3/eventsource"),
    get(b"/echo/000/s4/htmlfile?c=cb"),
    get(b"/echo/000/s5/jsonp?c=cb") + post(b"/echo/000/s5/jsonp_send", b"d=%5B%22x%22%5D",
                                           b"application/x-www-form-urlencoded"),
    get(b"/echo/000/s6/jsonp?c=%3C/script%3E"),
    post(b"/cookie_needed_echo/000/s7/xhr", b""),
    get(b"/close/000/s8/eventsource"),
    get(b"/amplify/000/s9/jsonp?callback=x") + post(b"/amplify/000/s9/jsonp_send", b'["5"]'),
    post(b"/echo/000/s10/xhr_send", b"[1,"),
    b"POST /echo/000/s11/xhr_send HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[\"a\r\n2\r\n\"]\r\n0\r\n\r\n",
    b"GET /echo HTTP/1.0\r\n\r\n",
    b"GET /echo/info HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\n\r\n\x01garbage\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    upgrade(b"/echo/000/w1/websocket"),
    upgrade(b"/echo/websocket"),
    upgrade(b"/disabled_websocket_echo/000/w2/websocket"),
    b"GET /echo/000/h1/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n",
]

WS = [b"\x00" + f for f in WS_FRAMES] + [b"\x01" + b"".join(WS_FRAMES[:3])]


def http_seeds() -> list[bytes]:
    """Seeds for fuzz_http: requests, and upgrades followed by frames."""
    out = [b"\x00" + s for s in HTTP]
    out += [b"\x07" + s for s in HTTP[:4]]
    # Frames with the upgrade request (one read), and in the next read.
    head = upgrade(b"/echo/000/w3/websocket")
    for f in WS_FRAMES:
        out.append(b"\x00" + head + f)
        out.append(bytes([len(head)]) + head + f)
    return out


def ws_seeds() -> list[bytes]:
    return list(WS)


def write_corpus(root: str) -> None:
    for name, seeds in (("http", http_seeds()), ("ws", ws_seeds())):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        for s in seeds:
            with open(os.path.join(d, hashlib.sha1(s).hexdigest()), "wb") as f:
                f.write(s)


if __name__ == "__main__":
    write_corpus(sys.argv[1] if len(sys.argv) > 1 else "fuzz-corpus")
