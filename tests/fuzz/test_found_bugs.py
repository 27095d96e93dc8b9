"""Regression tests: the server bugs the fuzzing found, one minimal reproduction each.

Each test states the correct behaviour; its docstring says what the server did
before the fix (commit deeea54, "Fix bugs found by fuzzing").
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tracemalloc
import uuid
from collections.abc import Iterator

import pytest

from fastsockjs import cli
from fastsockjs.apps import echo
from fastsockjs.engine.runtime import LoopTimerQueue
from fastsockjs.protocol.timers import Deadline
from tests.helpers import RawHttp, RawWebSocket, ServerThread, request, wait_for

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture(scope="module")
def srv(loop_kind: str) -> Iterator[ServerThread]:
    st = ServerThread(lambda: cli.testserver("http://127.0.0.1/x.js"), loop_kind).start()
    yield st
    st.stop()


def _masked_text(text: str) -> bytes:
    from fastsockjs._frames_py import build_frame

    return build_frame(1, text.encode("utf-8"), True, b"\x01\x02\x03\x04")


# -- 1. bytes in the same read as the upgrade request are dropped ------------------------------

def test_frame_sent_with_the_handshake_is_not_lost(srv: ServerThread) -> None:
    """
    Was: bytes that arrive in the same read as the WebSocket upgrade request are lost:
    HttpProtocol dispatches the upgrade inside httptools' on_message_complete, before
    data_received has stored the tail from HttpParserUpgrade, so Exchange.upgrade()
    hands the WebSocket an empty tail and the real one stays in HttpProtocol._tail
    """
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=1.5)
    s.sendall(
        f"GET /echo/000/{uuid.uuid4()}/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode() + _masked_text('["x"]')
    )
    got = b""
    try:
        while b'a["x"]' not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except TimeoutError:
        pass
    s.close()
    assert b'a["x"]' in got, got


def test_hixie76_nonce_in_the_same_packet(srv: ServerThread) -> None:
    """
    Was: a hixie-76 client sends its 8-byte key3 with the request head (that is the
    protocol); the key is dropped with the upgrade tail, so the handshake never
    completes, and no timeout ever closes the connection
    """
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=1.5)
    s.sendall(
        b"GET /echo/000/h/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
        b"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U"
    )
    got = b""
    try:
        while len(got.partition(b"\r\n\r\n")[2]) < 16:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except TimeoutError:
        pass
    s.close()
    assert got.partition(b"\r\n\r\n")[2][:16] == b"8jKS'y:G*Co,Wxa-", got


# -- 2. deeply nested JSON --------------------------------------------------------------------

NESTED = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_xhr_send_is_broken_json(srv: ServerThread) -> None:
    """
    Was: json.loads raises RecursionError (not ValueError) on deeply nested input;
    transports/base.decode_body lets it escape: the answer is the internal-error 500
    '500 - Internal Server Error' and a traceback is logged, instead of 500 'Broken JSON
    encoding.'
    """
    url = f"/echo/000/{uuid.uuid4()}"
    assert request(srv.port, "POST", url + "/xhr").body == b"o\n"
    r = request(srv.port, "POST", url + "/xhr_send", NESTED)
    assert (r.status, r.body) == (500, b"Broken JSON encoding.")


def test_deeply_nested_websocket_message_is_broken_framing(srv: ServerThread) -> None:
    """
    Was: decode_ws_message (both kernels) raises RecursionError on deeply nested JSON;
    WebSocketReceiver.on_text only catches ValueError, so the exception escapes
    HttpProtocol.data_received: asyncio/uvloop log 'Fatal error:
    protocol.data_received() call failed' and drop the socket, with no c[3000,"Broken
    framing."] and no close frame
    """
    ws = RawWebSocket(srv.port, f"/echo/000/{uuid.uuid4()}/websocket")
    assert ws.recv_text() == "o"
    ws.send_text(NESTED)
    frame = ws.recv_frame()
    ws.close()
    assert frame == (1, b'c[3000,"Broken framing."]')


# -- 3. unbounded buffering after an Upgrade request that was not upgraded ----------------------

def test_bytes_after_a_non_websocket_upgrade_are_bounded(srv: ServerThread) -> None:
    """
    Was: after any request carrying 'Connection: Upgrade' + 'Upgrade: x' (httptools
    raises HttpParserUpgrade), HttpProtocol sets _upgraded and appends every later byte
    to self._tail, without limit (and quadratically: bytes +=); when the request was
    answered by a long-lived response (xhr_streaming, eventsource, htmlfile, a held
    poll) a client can make the server buffer gigabytes
    """
    listener = srv.listener
    assert listener is not None
    c = RawHttp(srv.port)
    status, _ = c.request("POST", f"/echo/000/{uuid.uuid4()}/xhr_streaming",
                          {"Upgrade": "h2c", "Connection": "Upgrade"})
    assert status == 200
    junk = b"x" * 65536
    sent = 0
    # What the process holds, measured from outside the server (the server runs in
    # this process, on its own thread): allocations still alive once all was read.
    tracemalloc.start()
    try:
        read_before = srv.call(lambda: listener.stats()["bytes_in"])
        base = tracemalloc.get_traced_memory()[0]
        try:
            for _ in range(64):  # 4 MiB
                c.sock.sendall(junk)
                sent += len(junk)
        except OSError:
            pass  # the server closed the connection: bounded
        else:
            wait_for(lambda: srv.call(lambda: listener.stats()["bytes_in"])
                     >= read_before + sent, 10, "the server read what was sent")
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    c.close()
    assert held <= 1024 * 1024, f"the process holds {held} more bytes after {sent} sent"


# -- 4. the deadline heap delays due deadlines ---------------------------------------------------

def test_scheduler_fires_each_deadline_on_time() -> None:
    """
    Was: the scheduler's _fire reset _handle, runs the callbacks, and only re-arms
    for the heap top if no callback scheduled anything; a callback that re-arms a LATER
    deadline (a session's heartbeat, a connection's keep-alive) sets the timer handle to
    that later time, and every earlier entry waits for it
    """
    async def trial() -> tuple[float, float | None]:
        loop = asyncio.get_running_loop()
        queue = LoopTimerQueue(loop)
        t0 = loop.time()
        fired: dict[str, float] = {}
        later = Deadline(queue, lambda now: fired.setdefault("later", loop.time() - t0))

        def first(now: float) -> None:
            fired["first"] = loop.time() - t0
            later.set(t0 + 5.0)  # re-arms far away when it fires

        def second(now: float) -> None:
            fired["second"] = loop.time() - t0

        Deadline(queue, first).set(t0 + 0.05)
        Deadline(queue, second).set(t0 + 0.3)  # due long before that
        await asyncio.sleep(1.0)
        queue.close()
        return fired["first"], fired.get("second")

    for _ in range(5):
        first, second = asyncio.run(trial())
        if first < 0.25:  # "second" was not yet due when "first" fired: the case at hand
            break
    assert second is not None and second < 0.9, (first, second)


def test_session_expires_after_disconnect_delay(loop_kind: str) -> None:
    """
    Was: a session whose disconnect_delay ran out lives on until some unrelated later
    deadline (here another session's heartbeat) fires: sessions, their memory and their
    'close' events are late by up to heartbeat_delay / request_timeout /
    keepalive_timeout
    """
    st = ServerThread(lambda: [echo(prefix="/t", disconnect_delay=0.3, heartbeat_delay=5.0)],
                      loop_kind).start()
    try:
        a = f"/t/000/{uuid.uuid4()}"
        assert request(st.port, "POST", a + "/xhr").body == b"o\n"  # a: expires at +0.3 ...
        held = RawHttp(st.port)  # ... unless polled again: held poll, heartbeat at +5
        poll = f"POST {a}/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
        read_before = st.call(lambda: st.listener.stats()["bytes_in"])  # type: ignore[union-attr]
        held.send(poll)
        wait_for(lambda: st.call(lambda: st.listener.stats()["bytes_in"])  # type: ignore[union-attr]
                 >= read_before + len(poll), 5, "the held poll was read")
        b = f"/t/000/{uuid.uuid4()}"
        assert request(st.port, "POST", b + "/xhr").body == b"o\n"  # b: must expire at ~0.35
        time.sleep(1.5)
        r = request(st.port, "POST", b + "/xhr_send", json.dumps(["late?"]))
        held.close()
        assert r.status == 404, "session b is still alive 1.5 s after its 0.3 s disconnect_delay"
    finally:
        st.stop()


# -- 5. no lingering close: the last answer is lost to a client still sending -------------------

def _slow_reader(port: int) -> socket.socket:
    """A client with a small receive buffer that sends everything before it reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(3)
    s.connect(("127.0.0.1", port))
    return s


def _flood_then_read(s: socket.socket, data: bytes) -> bytes:
    try:
        s.sendall(data + b"\x00" * (4 << 20))  # the server reads this or resets us
    except OSError:
        pass
    out = bytearray()
    s.settimeout(5)
    try:
        while chunk := s.recv(65536):
            out += chunk
    except OSError:
        pass
    s.close()
    return bytes(out)


def test_400_reaches_a_client_that_is_still_sending(srv: ServerThread) -> None:
    """
    Was: after a protocol error the server closes the socket at once, with the client's
    bytes still unread: the kernel answers with a RST, which throws away whatever the
    server had written but the client had not yet received. Here the 100 pipelined
    answers before the 400, and the 400 itself, are lost. RFC 9112 9.6: half-close, keep
    reading (and discarding) for a while, then close (a 'lingering close')
    """
    s = _slow_reader(srv.port)
    out = _flood_then_read(s, b"GET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n" * 100 + b"\x01bad\r\n\r\n")
    assert (out.count(b"HTTP/1.1 200 OK"), out.count(b"HTTP/1.1 400")) == (100, 1)


def test_close_frame_reaches_a_client_that_is_still_sending(srv: ServerThread) -> None:
    """
    Was: failing the connection (here 1002, an unmasked frame) closes the socket with
    the client's bytes unread; the RST discards the echoes still in flight and the close
    frame, so the client never learns why it was dropped
    """
    from fastsockjs._frames_py import build_frame

    s = _slow_reader(srv.port)
    s.sendall((f"GET /echo/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    frames = build_frame(1, b"x" * 60000, True, b"abcd") * 4 + build_frame(1, b"bad", True, None)
    out = _flood_then_read(s, frames)
    close = b"\x88\x12\x03\xeaframe not masked"
    assert len(out) == 4 * (60000 + 4) + len(close) and out.endswith(close), (len(out), out[-20:])


def test_answers_before_a_closing_500_reach_a_pipelining_client(loop_kind: str) -> None:
    """
    Was: the lingering close covered parse errors and failed WebSockets, not an
    answer that ends the connection itself (5xx, 413, 'Connection: close', HTTP/1.0):
    pipelined requests arriving after it made the kernel send a RST, which discarded
    the answers the client had not read yet, those before the 500 included (RFC 9112
    9.6). Fixed in 6bcf580.
    """
    st = ServerThread(lambda: [echo(prefix="/e")], loop_kind).start()
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
        s.settimeout(3)
        s.connect(("127.0.0.1", st.port))
        info = b"GET /e/info HTTP/1.1\r\nHost: x\r\n\r\n"
        empty_send = b"POST /e/000/a/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"  # 500, closes
        out = _flood_then_read(s, info * 20 + empty_send + info * 1000)
    finally:
        st.stop()
    assert (out.count(b"HTTP/1.1 200 OK"), out.count(b"HTTP/1.1 500")) == (20, 1)
