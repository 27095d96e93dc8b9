"""Malformed WebSocket frames against a live server, after a valid handshake.

Each example opens a SockJS ``websocket`` session (and waits for ``o``) or a
raw ``/websocket``, sends generated client bytes (well-formed and malformed
frames: bad opcodes, RSV bits, unmasked frames, lying lengths, invalid UTF-8,
bad close payloads, fragmentation errors, oversize messages, broken SockJS
JSON, random bytes), half-closes, and reads everything until the server closes.

What came back is compared with ``fuzz/wsmodel.py``, a reference written from
RFC 6455 and the SockJS protocol: the same echoes (all of them, or a prefix
when the session ended abruptly), the same pongs, and an acceptable ending:
a close frame with 1002 / 1007 / 1009 for protocol violations (1003 for binary
on raw), the echo of the client's close code, ``c[3000,"Broken framing."]`` for
broken SockJS JSON or binary, or just the end of the connection when the
client's bytes were all valid or incomplete. The healthy sessions must not notice.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import wsmodel  # fuzz/ (put on sys.path by tests.fuzz.live)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.live import MAX_MESSAGE, FuzzServer, examples, scaled_timeout
from tests.helpers import TIMEOUT, RawWebSocket

pytestmark = pytest.mark.timeout(scaled_timeout())

SETTINGS = settings(
    max_examples=examples(150),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _xor(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def encode(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = b"\x01\x02\x03\x04",
           length: int | None = None, form: str = "minimal") -> bytes:
    """A client frame; ``length`` may lie about the payload, ``form`` forces a length encoding."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask is not None else 0
    if form == "64" or n >= 0x10000:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    elif form == "16" or n >= 126:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | n))
    if mask is None:
        return head + payload
    return head + mask + _xor(payload, mask)


json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)

text_payload = st.one_of(
    st.lists(st.text(max_size=20), max_size=4).map(lambda v: json.dumps(v).encode()),
    st.lists(st.text(max_size=20), max_size=4).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"[]", b'["a"', b"[1,]", b"NaN", b"[Infinity]", b'"x', b" [1]", b"{}", b"1e400", b"\xff",
                     b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b'["\xce\xba"]']),
    st.text(max_size=30).map(lambda t: t.encode("utf-8")),
    st.binary(max_size=30),
)
close_payload = st.one_of(
    st.tuples(st.sampled_from([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012,
                               1013, 1014, 1015, 1016, 2999, 3000, 3999, 4000, 4999, 5000, 0, 999, 65535])
              | st.integers(0, 65535),
              st.text(max_size=20).map(str.encode) | st.binary(max_size=8))
    .map(lambda t: t[0].to_bytes(2, "big") + t[1]),
    st.sampled_from([b"", b"\x03"]),
)


@st.composite
def frame(draw: st.DrawFn, clean: bool = False) -> bytes:
    """One frame; unless ``clean``, sometimes with a header defect."""
    kinds = ["text"] * 6 + ["ping", "pong", "close"]
    if not clean:
        kinds += ["binary", "cont", "reserved", "big"]
    kind = draw(st.sampled_from(kinds))
    fin, rsv, form, length = True, 0, "minimal", None
    mask: bytes | None = draw(st.binary(min_size=4, max_size=4))
    if not clean and draw(st.integers(0, 19)) == 0:
        mask = None
    if not clean and draw(st.integers(0, 19)) == 0:
        rsv = draw(st.integers(1, 7))
    if not clean and draw(st.integers(0, 19)) == 0:
        fin = False
    if draw(st.integers(0, 5)) == 0:
        form = draw(st.sampled_from(["16", "64"]))
    if kind == "text":
        opcode, payload = 1, draw(text_payload)
    elif kind == "binary":
        opcode, payload = 2, draw(st.binary(max_size=20))
    elif kind in ("ping", "pong"):
        opcode = 9 if kind == "ping" else 10
        payload = draw(st.binary(max_size=20) if clean else
                       st.binary(max_size=20) | st.binary(min_size=126, max_size=130))
    elif kind == "close":
        opcode = 8
        payload = draw(st.sampled_from([b"", b"\x03\xe8", b"\x0b\xb8bye", b"\x0f\x9f\xc3\xa9"])
                       if clean else close_payload)
    elif kind == "cont":
        opcode, payload = 0, draw(text_payload)
    elif kind == "reserved":
        opcode, payload = draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), draw(st.binary(max_size=4))
    else:  # a message around the size limit, or a header announcing a huge one
        opcode = 1
        size = draw(st.sampled_from([MAX_MESSAGE - 8, MAX_MESSAGE - 4, MAX_MESSAGE + 1, 1 << 40, 1 << 63]))
        if size < (1 << 40):
            payload = b'["' + b"x" * (size - 4) + b'"]'
        else:
            payload, length, form = b"", size, "64"
    if clean and kind == "text":
        payload = draw(st.lists(st.text(max_size=20), max_size=4).map(lambda v: json.dumps(v).encode()))
    if not clean and draw(st.integers(0, 19)) == 0 and length is None:
        length = max(0, len(payload) + draw(st.sampled_from([-3, -1, 1, 5])))  # a lying length
    return encode(opcode, payload, fin=fin, rsv=rsv, mask=mask, length=length, form=form)


@st.composite
def fragmented(draw: st.DrawFn) -> bytes:
    """A message in fragments (cut anywhere, even inside a UTF-8 sequence),
    maybe with control frames between them, maybe with one fragmentation error."""
    opcode = draw(st.sampled_from([1, 1, 1, 2]))
    payload = draw(text_payload)
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), min_size=1, max_size=3)))
    parts = [payload[a:b] for a, b in zip([0] + cuts, cuts + [len(payload)])]
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        out.append(encode(opcode if i == 0 else 0, part, fin=last))
        if not last and draw(st.integers(0, 3)) == 0:
            out.append(encode(draw(st.sampled_from([9, 10])), draw(st.binary(max_size=5))))
    error = draw(st.sampled_from([None] * 4 + ["no-final", "new-message", "extra-cont", "split-big"]))
    if error == "no-final":
        out[-1] = encode(0, parts[-1], fin=False)
    elif error == "new-message":
        out.insert(1, encode(1, b'["interrupt"]'))
    elif error == "extra-cont":
        out.append(encode(0, b"x"))
    elif error == "split-big":
        out = [encode(1, b'["' + b"y" * (MAX_MESSAGE // 2), fin=False),
               encode(0, b"y" * (MAX_MESSAGE // 2) + b'"]')]
    return b"".join(out)


class Blob(bytes):
    """Client bytes with a short repr (examples near the 64 KiB limit stay readable)."""

    def __repr__(self) -> str:
        if len(self) <= 300:
            return bytes.__repr__(self)
        return f"Blob({bytes(self[:150])!r} + <{len(self) - 300} bytes> + {bytes(self[-150:])!r})"

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(repr(self))  # type: ignore[attr-defined]


client_bytes = st.one_of(
    st.lists(frame(clean=True), min_size=1, max_size=6).map(b"".join),
    st.lists(frame() | fragmented(), min_size=1, max_size=5).map(b"".join),
    st.binary(min_size=1, max_size=60),
    st.tuples(st.lists(frame(), min_size=1, max_size=3).map(b"".join), st.integers(0, 200))
    .map(lambda t: t[0][: max(1, len(t[0]) - t[1])]),  # cut inside a frame
).map(Blob)


def run_ws(port: int, path: str, sockjs: bool, data: bytes) -> tuple[wsmodel.Observed, bytes, bool]:
    """(what the server sent, its bytes, whether the server reset the connection)."""
    ws = RawWebSocket(port, path)
    reset = False
    try:
        assert ws.status == 101, ws.status
        if sockjs:
            assert ws.recv_frame() == (1, b"o")
        sock = ws.http.sock
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            reset = True  # the server failed the connection while we were still sending
        except OSError:
            pass  # ENOTCONN: it closed before our shutdown
        out = bytearray(ws.buf)
        sock.settimeout(TIMEOUT)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                reset = True
                break
            if not chunk:
                break
            out += chunk
        return wsmodel.observe(bytes(out), sockjs, truncated=reset), bytes(out), reset
    finally:
        ws.close()


@SETTINGS
@given(data=client_bytes)
def test_sockjs_websocket_frames(fz: FuzzServer, data: bytes) -> None:
    obs, raw, reset = run_ws(fz.port, f"/echo/000/{uuid.uuid4().hex}/websocket", True, data)
    exp = wsmodel.expect_sockjs(data, MAX_MESSAGE)
    problem = wsmodel.compare(exp, obs, reset)
    assert problem is None, (problem, Blob(data), Blob(raw))
    fz.after_example()


@SETTINGS
@given(data=client_bytes)
def test_raw_websocket_frames(fz: FuzzServer, data: bytes) -> None:
    obs, raw, reset = run_ws(fz.port, "/echo/websocket", False, data)
    exp = wsmodel.expect_raw(data, MAX_MESSAGE)
    problem = wsmodel.compare(exp, obs, reset)
    assert problem is None, (problem, Blob(data), Blob(raw))
    fz.after_example()


def test_websocket_fuzzing_leaves_nothing_behind(fz: FuzzServer) -> None:
    fz.check_clean()
