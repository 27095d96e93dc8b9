#!/usr/bin/env python3
"""Churn client for the soak test: opens and ends SockJS sessions over every
transport as fast as it can, with raw sockets on one asyncio (uvloop) loop.

    python tests/soak/churn_client.py --port 8081 --sessions 7000 --concurrency 48

Session ``i`` uses transport ``TRANSPORTS[i % 7]`` and ends one of three ways
(``MODES[(i // 7) % 5]``): *normal* (WebSocket close handshake, or the client
simply stops polling / closes its stream with a FIN), *abort* (RST in the
middle of a stream or of a held poll), *server* (the client asks the service
to close the session: ``__close__`` makes it call ``conn.close(3001, ...)``).
Every session except aborted ones sends two messages and must get exactly
those two back; anything missing or foreign is reported as lost. Prints one
JSON object with the figures on stdout.

It runs in its own process so that the server under test has the process
(the GIL, its file descriptors, its RSS) to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import struct
import sys
import time
from collections import Counter
from urllib.parse import quote

TRANSPORTS = ("websocket", "websocket-raw", "xhr-polling", "xhr-streaming", "eventsource",
              "htmlfile", "jsonp-polling")
MODES = ("normal", "normal", "normal", "abort", "server")
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 1, 8, 9, 10
CLOSE_ME = "__close__"
SERVER_CLOSE = 'c[3001,"server close"]'
STEP_TIMEOUT = 10.0

stats: Counter[str] = Counter()
lost: list[str] = []
slowest = [0.0]  # the slowest request/response round trip, seconds


class Lost(Exception):
    pass


# -- plumbing ----------------------------------------------------------------------------------

async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    stats["connections"] += 1
    return await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)


def rst(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP RST (SO_LINGER 0)."""
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def fin(writer: asyncio.StreamWriter) -> None:
    writer.close()


def request_bytes(method: str, path: str, body: bytes = b"", ctype: str = "text/plain") -> bytes:
    stats["requests"] += 1
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method == "POST":
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> bytes:
    if status in (204, 304):
        return b""
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:
        chunk = await read_chunk(reader)
        if not chunk:
            return body
        body += chunk


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
    data = await reader.readexactly(size + 2)
    return data[:-2]


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                    path: str, body: bytes = b"", ctype: str = "text/plain") -> tuple[int, bytes]:
    t0 = time.monotonic()
    writer.write(request_bytes(method, path, body, ctype))
    status, headers = await read_head(reader)
    body = await read_body(reader, status, headers)
    slowest[0] = max(slowest[0], time.monotonic() - t0)
    return status, body


class Frames:
    """SockJS frames out of a streaming body, whatever the transport's wrapping."""

    JSONP = re.compile(rb'/\*\*/cb\((".*?(?<!\\)")\);\r\n', re.S)
    HTML = re.compile(rb'<script>\np\((".*?(?<!\\)")\);\n</script>\r\n', re.S)

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.buf = b""
        self.prelude_done = transport not in ("xhr-streaming", "eventsource", "htmlfile")

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        out: list[str] = []
        if not self.prelude_done:
            if self.transport == "xhr-streaming":
                end = self.buf.find(b"\n")
                if end < 0:
                    return out
                self.buf = self.buf[end + 1 :]
            elif self.transport == "eventsource":
                if len(self.buf) < 2:
                    return out
                self.buf = self.buf[2:]
            else:
                end = self.buf.find(b"</script>")
                end = self.buf.find(b"\r\n\r\n", end)
                if end < 0:
                    return out
                self.buf = self.buf[end + 4 :]
            self.prelude_done = True
        while True:
            if self.transport in ("xhr-streaming", "xhr-polling"):
                end = self.buf.find(b"\n")
                if end < 0:
                    break
                out.append(self.buf[:end].decode())
                self.buf = self.buf[end + 1 :]
            elif self.transport == "eventsource":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                line = self.buf[:end].decode()
                self.buf = self.buf[end + 4 :]
                assert line.startswith("data: "), line
                out.append(line[6:].replace("%0A", "\n").replace("%0D", "\r")
                           .replace("%00", "\x00").replace("%25", "%"))
            else:
                m = (self.HTML if self.transport == "htmlfile" else self.JSONP).match(self.buf)
                if m is None:
                    break
                out.append(json.loads(m.group(1)))
                self.buf = self.buf[m.end() :]
        stats["sockjs_frames_received"] += len(out)
        return out


def messages_of(frames: list[str], got: list[str], session: str) -> bool:
    """Collect a[...] messages; True when a close frame came."""
    closed = False
    for f in frames:
        if f == "h":
            continue
        if f.startswith("a["):
            got.extend(json.loads(f[1:]))
        elif f == SERVER_CLOSE:
            closed = True
        else:
            raise Lost(f"{session}: foreign frame {f[:80]!r}")
    return closed


# -- WebSocket ------------------------------------------------------------------------------------

def ws_frame(opcode: int, payload: bytes) -> bytes:
    stats["ws_frames_sent"] += 1
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def ws_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, bytes] | None:
    while True:
        try:
            b0, b1 = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            return None
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(n)
        stats["ws_frames_received"] += 1
        op = b0 & 0x0F
        if op == OP_PING:
            writer.write(ws_frame(OP_PONG, payload))
            continue
        return op, payload


async def ws_session(port: int, path: str, raw: bool, mode: str, sid: str) -> None:
    reader, writer = await connect(port)
    key = base64.b64encode(os.urandom(16)).decode()
    stats["requests"] += 1
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    status, _ = await read_head(reader)
    if status != 101:
        raise Lost(f"{sid}: handshake answered {status}")
    if not raw and await ws_read(reader, writer) != (OP_TEXT, b"o"):
        raise Lost(f"{sid}: no open frame")
    msgs = [f"{sid}-1", f"{sid}-2 \u00e9"]
    if raw:
        writer.write(ws_frame(OP_TEXT, msgs[0].encode()) + ws_frame(OP_TEXT, msgs[1].encode()))
    else:
        writer.write(ws_frame(OP_TEXT, json.dumps(msgs).encode()))
    stats["messages_sent"] += 2
    if mode == "abort":
        rst(writer)
        return
    got: list[str] = []
    while len(got) < 2:
        frame = await ws_read(reader, writer)
        if frame is None or frame[0] != OP_TEXT:
            raise Lost(f"{sid}: lost echoes (got {got!r}, then {frame!r})")
        text = frame[1].decode()
        if raw:
            got.append(text)
        elif messages_of([text], got, sid):
            raise Lost(f"{sid}: closed before the echoes")
    if got != msgs:
        raise Lost(f"{sid}: echoes {got!r} != {msgs!r}")
    stats["messages_echoed"] += 2
    if mode == "normal":
        writer.write(ws_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
        frame = await ws_read(reader, writer)
        if frame is None or frame[0] != OP_CLOSE:
            raise Lost(f"{sid}: no close echo: {frame!r}")
    else:
        stats["close_requests"] += 1
        writer.write(ws_frame(OP_TEXT, (CLOSE_ME if raw else json.dumps([CLOSE_ME])).encode()))
        frame = await ws_read(reader, writer)
        if not raw:
            if frame != (OP_TEXT, SERVER_CLOSE.encode()):
                raise Lost(f"{sid}: expected {SERVER_CLOSE}, got {frame!r}")
            frame = await ws_read(reader, writer)
        if frame is None or frame[0] != OP_CLOSE:
            raise Lost(f"{sid}: no close frame from the server: {frame!r}")
        code = int.from_bytes(frame[1][:2], "big")
        if code != (3001 if raw else 1000):
            raise Lost(f"{sid}: close code {code}")
        writer.write(ws_frame(OP_CLOSE, frame[1][:2]))
    stats["ws_closed_cleanly"] += 1
    if await ws_read(reader, writer) is not None:
        raise Lost(f"{sid}: data after the close handshake")
    fin(writer)


# -- HTTP transports ------------------------------------------------------------------------------

def send_body(transport: str, msgs: list[str]) -> tuple[str, bytes, str]:
    payload = json.dumps(msgs)
    if transport == "jsonp-polling":
        return "jsonp_send", ("d=" + quote(payload)).encode(), "application/x-www-form-urlencoded"
    return "xhr_send", payload.encode(), "text/plain"


async def polling_session(port: int, base: str, transport: str, mode: str, sid: str) -> None:
    reader, writer = await connect(port)
    jsonp = transport == "jsonp-polling"
    method, recv = ("GET", "/jsonp?c=cb") if jsonp else ("POST", "/xhr")
    frames = Frames(transport)
    status, body = await roundtrip(reader, writer, method, base + recv)
    if status != 200 or frames.feed(body) != ["o"]:
        raise Lost(f"{sid}: open poll answered {status} {body[:80]!r}")
    msgs = [f"{sid}-1", f"{sid}-2 \u00e9"]
    endpoint, payload, ctype = send_body(transport, msgs)
    status, _ = await roundtrip(reader, writer, "POST", base + "/" + endpoint, payload, ctype)
    if status not in (200, 204):
        raise Lost(f"{sid}: send answered {status}")
    stats["messages_sent"] += 2
    got: list[str] = []
    while len(got) < 2:
        status, body = await roundtrip(reader, writer, method, base + recv)
        if messages_of(frames.feed(body), got, sid):
            raise Lost(f"{sid}: closed before the echoes")
    if got != msgs:
        raise Lost(f"{sid}: echoes {got!r} != {msgs!r}")
    stats["messages_echoed"] += 2
    if mode == "abort":
        writer.write(request_bytes(method, base + recv))  # a held poll ...
        await writer.drain()
        await asyncio.sleep(0.01)
        rst(writer)  # ... that vanishes
        return
    if mode == "server":
        stats["close_requests"] += 1
        endpoint, payload, ctype = send_body(transport, [CLOSE_ME])
        await roundtrip(reader, writer, "POST", base + "/" + endpoint, payload, ctype)
        status, body = await roundtrip(reader, writer, method, base + recv)
        if frames.feed(body) != [SERVER_CLOSE]:
            raise Lost(f"{sid}: expected {SERVER_CLOSE}, got {body[:80]!r}")
    fin(writer)  # normal: just stop polling; the session times out


async def streaming_session(port: int, base: str, transport: str, mode: str, sid: str) -> None:
    reader, writer = await connect(port)
    path = {"xhr-streaming": ("POST", "/xhr_streaming"), "eventsource": ("GET", "/eventsource"),
            "htmlfile": ("GET", "/htmlfile?c=cb")}[transport]
    writer.write(request_bytes(path[0], base + path[1]))
    status, _ = await read_head(reader)
    if status != 200:
        raise Lost(f"{sid}: stream answered {status}")
    frames = Frames(transport)
    pending: list[str] = []
    while not pending:
        pending = frames.feed(await read_chunk(reader))
    if pending.pop(0) != "o":
        raise Lost(f"{sid}: no open frame")
    msgs = [f"{sid}-1", f"{sid}-2 \u00e9"]
    sreader, swriter = await connect(port)
    endpoint, payload, ctype = send_body(transport, msgs)
    status, _ = await roundtrip(sreader, swriter, "POST", base + "/" + endpoint, payload, ctype)
    stats["messages_sent"] += 2
    if mode == "abort":
        rst(writer)  # RST mid-stream, echoes unread
        fin(swriter)
        return
    got: list[str] = []
    closed = messages_of(pending, got, sid)
    while len(got) < 2 and not closed:
        chunk = await read_chunk(reader)
        if not chunk:
            break
        closed = messages_of(frames.feed(chunk), got, sid)
    if got != msgs:
        raise Lost(f"{sid}: echoes {got!r} != {msgs!r}")
    stats["messages_echoed"] += 2
    if mode == "server":
        stats["close_requests"] += 1
        endpoint, payload, ctype = send_body(transport, [CLOSE_ME])
        await roundtrip(sreader, swriter, "POST", base + "/" + endpoint, payload, ctype)
        seen: list[str] = []
        while SERVER_CLOSE not in seen:
            chunk = await read_chunk(reader)
            if not chunk:
                raise Lost(f"{sid}: stream ended without {SERVER_CLOSE}")
            seen.extend(f for f in frames.feed(chunk) if f != "h")
        if seen != [SERVER_CLOSE] or await read_chunk(reader) != b"":
            raise Lost(f"{sid}: after close: {seen!r}")
    fin(swriter)
    fin(writer)


# -- driver ----------------------------------------------------------------------------------------

async def one(port: int, prefix: str, i: int) -> None:
    transport = TRANSPORTS[i % len(TRANSPORTS)]
    mode = MODES[(i // len(TRANSPORTS)) % len(MODES)]
    sid = f"s{i}"
    base = f"{prefix}/000/{sid}-{os.getpid()}"
    if transport == "websocket":
        coro = ws_session(port, base + "/websocket", False, mode, sid)
    elif transport == "websocket-raw":
        coro = ws_session(port, prefix + "/websocket", True, mode, sid)
    elif transport in ("xhr-polling", "jsonp-polling"):
        coro = polling_session(port, base, transport, mode, sid)
    else:
        coro = streaming_session(port, base, transport, mode, sid)
    try:
        await asyncio.wait_for(coro, STEP_TIMEOUT)
        stats["sessions_ok"] += 1
        stats[f"{transport}/{mode}"] += 1
    except Lost as exc:
        lost.append(str(exc))
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        lost.append(f"{sid} {transport}/{mode}: {type(exc).__name__} {exc}")


async def main(args: argparse.Namespace) -> None:
    counter = iter(range(args.start, args.start + args.sessions))
    deadline = time.monotonic() + args.deadline

    async def worker() -> None:
        for i in counter:
            if time.monotonic() > deadline:
                stats["skipped_deadline"] += 1
                continue
            await one(args.port, args.prefix, i)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    stats["seconds_x1000"] = int((time.monotonic() - t0) * 1000)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--prefix", default="/soak")
    p.add_argument("--sessions", type=int, default=700)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=48)
    p.add_argument("--deadline", type=float, default=60.0, help="start no session after this")
    a = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(a))
    json.dump({"stats": dict(stats), "lost": lost[:50], "lost_count": len(lost),
               "slowest_ms": round(slowest[0] * 1000)}, sys.stdout)
