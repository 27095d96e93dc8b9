"""permessage-deflate (RFC 7692) in the sans-I/O codec: offer negotiation
(table-driven over offers and settings) and the codec on a fake link: a
client-side zlib builds what a browser sends, the codec's events and frames
are checked against it."""

from __future__ import annotations

import gc
import os
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from fastsockjs import WebSocketCompression
from fastsockjs._frames_py import build_frame, parse_frames
from fastsockjs.options import Options, OptionsError
from fastsockjs.protocol import websocket as wsproto
from fastsockjs.protocol.http import Request

TAIL = b"\x00\x00\xff\xff"
MASK = b"\x11\x22\x33\x44"
PMD = "permessage-deflate"
SNCT = "server_no_context_takeover"
CNCT = "client_no_context_takeover"
DEFAULT = WebSocketCompression()
TAKEOVER = WebSocketCompression(server_no_context_takeover=False,
                                client_no_context_takeover=False)


# -- negotiation -----------------------------------------------------------------------
NEGOTIATION: list[tuple[str, WebSocketCompression, str, str | None]] = [
    # (what, settings, offer header, response header or None for "declined")
    ("browser offer, defaults", DEFAULT, f"{PMD}; client_max_window_bits",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12"),
    ("bare offer (Firefox)", DEFAULT, PMD, f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12"),
    ("bare offer, context takeover both ways", TAKEOVER, PMD,
     f"{PMD}; server_max_window_bits=12"),
    ("15-bit server window is not announced",
     WebSocketCompression(server_max_window_bits=15, server_no_context_takeover=False,
                          client_no_context_takeover=False), PMD, PMD),
    ("client asks for server_no_context_takeover", TAKEOVER, f"{PMD}; {SNCT}",
     f"{PMD}; {SNCT}; server_max_window_bits=12"),
    ("client promises client_no_context_takeover", TAKEOVER, f"{PMD}; {CNCT}",
     f"{PMD}; {CNCT}; server_max_window_bits=12"),
    ("server window: the smaller of offer and settings", DEFAULT,
     f"{PMD}; server_max_window_bits=10", f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=10"),
    ("server window above ours", DEFAULT, f"{PMD}; server_max_window_bits=15",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12"),
    ("server window 8 (accepted; we then send uncompressed)", DEFAULT,
     f"{PMD}; server_max_window_bits=8", f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=8"),
    ("quoted value", DEFAULT, f'{PMD}; server_max_window_bits="10"',
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=10"),
    ("client window limited when the client allows it",
     WebSocketCompression(client_max_window_bits=10), f"{PMD}; client_max_window_bits",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12; client_max_window_bits=10"),
    ("client window: the smaller of offer and settings",
     WebSocketCompression(client_max_window_bits=12), f"{PMD}; client_max_window_bits=9",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12; client_max_window_bits=9"),
    ("client window offered with a value, 15 allowed", DEFAULT,
     f"{PMD}; client_max_window_bits=11",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12; client_max_window_bits=11"),
    ("client window cannot be limited: declined", WebSocketCompression(client_max_window_bits=10),
     PMD, None),
    ("... then the next offer is taken", WebSocketCompression(client_max_window_bits=10),
     f"{PMD}, {PMD}; client_max_window_bits",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12; client_max_window_bits=10"),
    ("unknown parameter: declined", DEFAULT, f"{PMD}; foo", None),
    ("repeated parameter: declined", DEFAULT, f"{PMD}; {SNCT}; {SNCT}", None),
    ("value on a flag: declined", DEFAULT, f"{PMD}; {CNCT}=1", None),
    ("server window without value: declined", DEFAULT, f"{PMD}; server_max_window_bits", None),
    ("server window 16: declined", DEFAULT, f"{PMD}; server_max_window_bits=16", None),
    ("server window 7: declined", DEFAULT, f"{PMD}; server_max_window_bits=7", None),
    ("leading zero: declined", DEFAULT, f"{PMD}; server_max_window_bits=09", None),
    ("client window 16: declined", DEFAULT, f"{PMD}; client_max_window_bits=16", None),
    ("bad offer, then a good one", DEFAULT, f"{PMD}; x=1, {PMD}; {SNCT}",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12"),
    ("other extensions are skipped", DEFAULT, f"x-webkit-deflate-frame, {PMD}",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12"),
    ("case-insensitive names", DEFAULT, "PerMessage-Deflate; Server_No_Context_Takeover",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12"),
    ("two header lines, joined by the parser", DEFAULT, f"foo, {PMD}",
     f"{PMD}; {SNCT}; {CNCT}; server_max_window_bits=12"),
    ("no permessage-deflate at all", DEFAULT, "x-webkit-deflate-frame", None),
    ("malformed header", DEFAULT, f"{PMD}; =", None),
    ("malformed header (dangling ;)", DEFAULT, f"{PMD};", None),
    ("malformed header (unterminated quote)", DEFAULT, f'{PMD}; server_max_window_bits="10',
     None),
]


@pytest.mark.parametrize(("what", "config", "offer", "response"), NEGOTIATION,
                         ids=[row[0] for row in NEGOTIATION])
def test_negotiation(what: str, config: WebSocketCompression, offer: str,
                     response: str | None) -> None:
    params = wsproto.PerMessageDeflate(config).negotiate(offer)
    assert (params.response if params is not None else None) == response


def test_negotiated_parameters() -> None:
    pmd = wsproto.PerMessageDeflate(WebSocketCompression(client_max_window_bits=11))
    p = pmd.negotiate(f"{PMD}; client_max_window_bits=13; server_max_window_bits=10")
    assert p is not None
    assert (p.server_window_bits, p.client_window_bits) == (10, 11)
    assert p.server_no_context_takeover and p.client_no_context_takeover
    # One shared compressor per window size and mount.
    q = pmd.negotiate(f"{PMD}; server_max_window_bits=10; client_max_window_bits")
    assert q is not None and q.shared is p.shared is not None
    r = pmd.negotiate(f"{PMD}; client_max_window_bits")
    assert r is not None and r.shared is not p.shared
    eight = pmd.negotiate(f"{PMD}; server_max_window_bits=8; client_max_window_bits")
    assert eight is not None and eight.server_window_bits == 0 and eight.shared is None
    own = wsproto.PerMessageDeflate(TAKEOVER).negotiate(PMD)
    assert own is not None and own.shared is None and not own.server_no_context_takeover


@pytest.mark.parametrize(("header", "parsed"), [
    ("a", [("a", [])]),
    ("a; b=1; c, d", [("a", [("b", "1"), ("c", None)]), ("d", [])]),
    ('a; b="x\\"y"', [("a", [("b", 'x"y')])]),
    (" a ,, b ", [("a", []), ("b", [])]),
    ("", None), ("a b", None), ("a;", None), ("a; b=", None), ("a; b==1", None), (";", None),
])
def test_parse_extensions(header: str, parsed: Any) -> None:
    assert wsproto.parse_extensions(header) == parsed


def test_options() -> None:
    assert Options().ws_compression is None
    assert Options(websocket_compression=True).ws_compression == DEFAULT
    assert Options(websocket_compression=False).ws_compression is None
    small = WebSocketCompression(level=1)
    assert Options(websocket_compression=small).ws_compression is small
    with pytest.raises(OptionsError):
        Options(websocket_compression="yes")  # type: ignore[arg-type]
    for bad in ({"level": 10}, {"mem_level": 0}, {"server_max_window_bits": 8},
                {"client_max_window_bits": 16}, {"min_size": -1},
                {"server_no_context_takeover": 1}):
        with pytest.raises(OptionsError):
            WebSocketCompression(**bad)


def test_101_carries_the_agreed_extension() -> None:
    request = Request("GET", "/echo/websocket", {"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="},
                      upgrade=True)
    assert b"Sec-WebSocket-Extensions" not in wsproto.handshake_response(request)
    request.ws_deflate = wsproto.PerMessageDeflate(DEFAULT).negotiate(PMD)
    head = wsproto.handshake_response(request).decode()
    assert "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; " \
        "client_no_context_takeover; server_max_window_bits=12\r\n" in head
    assert head.endswith("\r\n\r\n")


# -- the codec on a fake link --------------------------------------------------------------
def codec_for(offer: str = f"{PMD}; client_max_window_bits", config: WebSocketCompression = DEFAULT,
              max_size: int = 1 << 20) -> wsproto.DeflateCodec:
    params = wsproto.PerMessageDeflate(config).negotiate(offer)
    assert params is not None
    return wsproto.DeflateCodec(max_size, params)


def kept(step: Callable[[], None]) -> int:
    """Bytes still allocated once ``step`` is over: what a codec keeps between
    messages. zlib allocates its state through PyMem_RawMalloc, which tracemalloc
    traces (a deflate or inflate context is some 10-40 KiB)."""
    tracemalloc.start()
    try:
        step()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


#: Less than one zlib context (an inflater at 8 window bits alone holds ~8 KiB).
NO_ZLIB_STATE = 2048


class Client:
    """What a browser does: compress each message, mask its frames."""

    def __init__(self, takeover: bool = False, wbits: int = 15) -> None:
        self.takeover = takeover
        self.wbits = wbits
        self.z: Any = None
        self.inflater: Any = None

    def deflate(self, data: bytes) -> bytes:
        if self.z is None or not self.takeover:
            self.z = zlib.compressobj(6, zlib.DEFLATED, -self.wbits)
        out = self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]

    def message(self, opcode: int, data: bytes, pieces: int = 1) -> list[bytes]:
        """A compressed message as ``pieces`` frames (RSV1 on the first only)."""
        payload = self.deflate(data)
        step = max(1, -(-len(payload) // pieces))
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        return [
            build_frame(opcode if i == 0 else wsproto.OP_CONT, chunk, i == len(chunks) - 1,
                        MASK, i == 0)
            for i, chunk in enumerate(chunks)
        ]

    def read(self, wire: bytes, context: bool = False) -> tuple[bool, int, bytes]:
        """One server frame, inflated if it has RSV1."""
        parsed, pos, err = parse_frames(wire, 0, 1 << 30, False, True)
        assert err is None and pos == len(wire) and len(parsed) == 1
        fin, opcode, payload = parsed[0]
        if not opcode & wsproto.OP_RSV1:
            return False, opcode, payload
        if self.inflater is None or not context:
            self.inflater = zlib.decompressobj(-15)
        return True, opcode & 0x0F, self.inflater.decompress(payload + TAIL)


def test_compressed_text_and_binary_round_trip() -> None:
    codec, client = codec_for(), Client()
    text = '["hello", {"user": 1, "text": "' + "é" * 300 + '"}]'
    events = codec.receive_data(b"".join(client.message(wsproto.OP_TEXT, text.encode())))
    assert events == [(wsproto.TEXT, text)]
    blob = bytes(range(256)) * 20
    assert codec.receive_data(b"".join(client.message(wsproto.OP_BINARY, blob))) == [
        (wsproto.BINARY, blob)
    ]
    # An uncompressed message is still fine on a compressed connection.
    assert codec.receive_data(build_frame(wsproto.OP_TEXT, b"plain", True, MASK)) == [
        (wsproto.TEXT, "plain")
    ]
    # Server to client: RSV1 set, the payload inflates to the message.
    assert client.read(codec.text(text)) == (True, wsproto.OP_TEXT, text.encode())
    assert client.read(codec.binary(blob)) == (True, wsproto.OP_BINARY, blob)
    # Under min_size: sent as is.
    assert client.read(codec.text("short")) == (False, wsproto.OP_TEXT, b"short")


def test_fragmented_compressed_message_with_control_frames_between() -> None:
    codec, client = codec_for(), Client()
    text = ("fragmented and compressed " * 200).encode()
    parts = client.message(wsproto.OP_TEXT, text, pieces=5)
    assert len(parts) == 5
    ping = build_frame(wsproto.OP_PING, b"p1", True, MASK)
    pong = build_frame(wsproto.OP_PONG, b"p2", True, MASK)
    wire = parts[0] + ping + parts[1] + parts[2] + pong + parts[3] + parts[4]
    events = []
    for i in range(0, len(wire), 7):  # byte soup: any split works
        events += codec.receive_data(wire[i:i + 7])
    assert events == [(wsproto.PING, b"p1"), (wsproto.PONG, b"p2"), (wsproto.TEXT, text.decode())]
    # The next fragmented message starts clean (no context carried over), and once it
    # is read none is kept.
    wire = b"".join(client.message(wsproto.OP_BINARY, b"x" * 100, 3))

    def next_message() -> None:
        assert codec.receive_data(wire) == [(wsproto.BINARY, b"x" * 100)]

    assert kept(next_message) < NO_ZLIB_STATE


def test_client_context_takeover() -> None:
    # The client keeps its LZ77 window across messages: so must we.
    codec = codec_for(PMD, TAKEOVER)
    client = Client(takeover=True)
    message = b'{"type": "chat", "room": "lobby", "text": "hello everybody"}'
    first = client.message(wsproto.OP_TEXT, message)
    second = client.message(wsproto.OP_TEXT, message)
    assert len(second[0]) < len(first[0])  # it refers back to the first

    def read_first() -> None:
        assert codec.receive_data(first[0]) == [(wsproto.TEXT, message.decode())]

    assert kept(read_first) > 4 * NO_ZLIB_STATE  # its window stays for the next one
    assert codec.receive_data(second[0]) == [(wsproto.TEXT, message.decode())]


def test_server_context_takeover_frames_are_not_shared() -> None:
    codec, client = codec_for(PMD, TAKEOVER), Client()
    assert codec.frame_key is None
    message = "m" * 40 + '{"type": "chat", "room": "lobby", "text": "hello everybody"}'
    one, two = codec.text(message), codec.text(message)
    assert len(two) < len(one)
    assert client.read(one, context=True)[2] == message.encode()
    assert client.read(two, context=True)[2] == message.encode()


def test_no_context_takeover_sessions_share_frames() -> None:
    pmd = wsproto.PerMessageDeflate(DEFAULT)
    a = wsproto.DeflateCodec(1 << 20, pmd.negotiate(PMD))  # type: ignore[arg-type]
    b = wsproto.DeflateCodec(1 << 20, pmd.negotiate(f"{PMD}; client_max_window_bits"))  # type: ignore[arg-type]
    assert a.frame_key is b.frame_key is not None
    message = '["' + "broadcast " * 50 + '"]'
    frame_a = a.text(message)
    # Each frame inflates on its own, whatever was compressed before it.
    for _ in range(3):
        assert b.text(message) == frame_a
        assert Client().read(b.text("other " * 30))[2] == ("other " * 30).encode()
    assert Client().read(frame_a)[2] == message.encode()
    # The plain codec, and a codec that may not compress (8-bit window), share a key.
    eight = wsproto.DeflateCodec(1 << 20, pmd.negotiate(f"{PMD}; server_max_window_bits=8"))  # type: ignore[arg-type]
    assert eight.frame_key == wsproto.Codec.frame_key
    assert eight.text(message) == wsproto.Codec.text(message)


def test_incompressible_message_goes_uncompressed() -> None:
    codec = codec_for()
    noise = os.urandom(2000)
    rsv1, opcode, data = Client().read(codec.binary(noise))
    assert (rsv1, opcode, data) == (False, wsproto.OP_BINARY, noise)


@pytest.mark.parametrize(("frames_of", "why"), [
    (lambda c: [build_frame(wsproto.OP_PING, b"x", True, MASK, True)], "RSV1 on a control frame"),
    (lambda c: [build_frame(wsproto.OP_TEXT, b"", False, MASK),
                build_frame(wsproto.OP_CONT, c.deflate(b"abc"), True, MASK, True)],
     "RSV1 on a continuation frame"),
    (lambda c: [*c.message(wsproto.OP_TEXT, b"abc" * 100, 3)[:1], *c.message(
        wsproto.OP_TEXT, b"new", 1)], "a new message inside a fragmented one"),
])
def test_rsv1_rules(frames_of: Any, why: str) -> None:
    codec = codec_for()
    events = codec.receive_data(b"".join(frames_of(Client())))
    assert events[-1][0] == wsproto.FAIL and events[-1][1][0] == wsproto.CLOSE_PROTOCOL_ERROR, why


def test_rsv1_without_negotiation_is_a_protocol_error() -> None:
    codec = wsproto.Codec(1 << 20)
    events = codec.receive_data(b"".join(Client().message(wsproto.OP_TEXT, b"hello")))
    assert events == [(wsproto.FAIL, (wsproto.CLOSE_PROTOCOL_ERROR, "reserved bits set"))]


def test_invalid_compressed_data_and_utf8() -> None:
    codec = codec_for()
    events = codec.receive_data(build_frame(wsproto.OP_TEXT, b"\xff\xff\xff", True, MASK, True))
    assert events == [(wsproto.FAIL, (wsproto.CLOSE_INVALID_DATA, "invalid compressed data"))]
    codec = codec_for()
    events = codec.receive_data(b"".join(Client().message(wsproto.OP_TEXT, b"ok \xc3\x28 bad", 2)))
    assert events == [(wsproto.FAIL, (wsproto.CLOSE_INVALID_DATA, "invalid UTF-8"))]


@pytest.mark.parametrize("pieces", [1, 4])
def test_bomb_closes_1009_without_inflating_it(pieces: int) -> None:
    # ~100 KB on the wire that would inflate to 100 MB: refused once it passes
    # max_size, and the codec never holds much more than max_size.
    max_size = 1 << 20
    codec = codec_for(max_size=max_size)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\x00" * (1 << 20)
    payload = b"".join(z.compress(zeros) for _ in range(100)) + z.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(payload) < max_size // 8
    step = -(-len(payload) // pieces)
    chunks = [payload[i:i + step] for i in range(0, len(payload), step)]
    wire = b"".join(
        build_frame(wsproto.OP_BINARY if i == 0 else wsproto.OP_CONT, c, i == len(chunks) - 1,
                    MASK, i == 0)
        for i, c in enumerate(chunks)
    )
    tracemalloc.start()
    try:
        events = codec.receive_data(wire)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert events == [(wsproto.FAIL, (wsproto.CLOSE_TOO_BIG, "message too big"))]
    assert peak < len(wire) * 3 + 4 * max_size, peak
    assert codec.receive_data(b"more") == []  # failed: nothing more is parsed


def test_size_limit_counts_inflated_bytes_across_fragments() -> None:
    codec = codec_for(max_size=1000)
    client = Client()
    ok = client.message(wsproto.OP_TEXT, b"a" * 1000, 3)
    assert codec.receive_data(b"".join(ok)) == [(wsproto.TEXT, "a" * 1000)]
    over = client.message(wsproto.OP_TEXT, b"a" * 1001, 3)
    assert codec.receive_data(b"".join(over)) == [
        (wsproto.FAIL, (wsproto.CLOSE_TOO_BIG, "message too big"))
    ]


def test_idle_session_keeps_no_zlib_state() -> None:
    # With the defaults, nothing of zlib outlives a message on either side.
    codec, client = codec_for(), Client()
    wire = b"".join(client.message(wsproto.OP_TEXT, b"z" * 5000, 2))

    def both_ways() -> None:
        assert codec.receive_data(wire) == [(wsproto.TEXT, "z" * 5000)]
        assert codec.text("y" * 5000)

    assert kept(both_ways) < NO_ZLIB_STATE
    codec = codec_for(PMD, TAKEOVER)

    def send() -> None:
        assert codec.text("y" * 5000)

    assert kept(send) > 4 * NO_ZLIB_STATE  # context takeover: kept, by request
