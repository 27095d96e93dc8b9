"""Bad input from the server: a clear exception, never a hang. A small hostile
server (raw asyncio) answers /info correctly and then misbehaves as told."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from fastsockjs._frames_py import build_frame
from fastsockjs.client import (
    ConnectError,
    ConnectionLost,
    ProtocolError,
    connect,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

INFO = json.dumps({"websocket": True, "cookie_needed": False, "origins": ["*:*"], "entropy": 1})
JS = "application/javascript; charset=UTF-8"
EOF = b"\x00EOF"

# (request line's path tail, request number) -> raw response bytes, or None to hang
Script = Callable[[str, int], Awaitable[bytes | None]]


def response(status: int, body: bytes | str, ctype: str = JS, extra: str = "") -> bytes:
    if isinstance(body, str):
        body = body.encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return lines[0].split()[1], headers


@pytest_asyncio.fixture
async def hostile() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    hung: list[asyncio.Event] = []

    async def start(script: Script) -> str:
        count = {"n": 0}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while (req := await _read_request(reader)) is not None:
                    path, headers = req
                    if path.endswith("/info"):
                        writer.write(response(200, INFO, "application/json; charset=UTF-8"))
                        continue
                    count["n"] += 1
                    if path.endswith("/websocket"):
                        accept = base64.b64encode(hashlib.sha1(
                            (headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()
                        ).digest()).decode()
                        writer.write(
                            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
                        )
                    answer = await script(path.rsplit("/", 1)[1], count["n"])
                    if answer is None:
                        event = asyncio.Event()
                        hung.append(event)
                        await event.wait()
                        return
                    # A trailing EOF marker: send the rest, then close the connection.
                    eof = answer.endswith(EOF)
                    writer.write(answer[: -len(EOF)] if eof else answer)
                    await writer.drain()
                    if eof:
                        return
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/svc"

    yield start
    for event in hung:
        event.set()
    for server in servers:
        server.close()


def ws_text(text: str) -> bytes:
    return build_frame(1, text.encode())


async def test_malformed_frame_xhr(hostile: Callable[[Script], Awaitable[str]]) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return response(200, "o\n" if n == 1 else "a[\"ok\"]\nx[nonsense\n")

    url = await hostile(script)
    async with connect(url, ["xhr-polling"]) as conn:
        assert await conn.recv(timeout=5) == "ok"
        with pytest.raises(ProtocolError, match="malformed frame") as info:
            await conn.recv(timeout=5)
        assert info.value.code == 1002
        with pytest.raises(ProtocolError):  # `async for` raises it too, it does not just end
            async for _ in conn:
                pass


@pytest.mark.parametrize("bad", ['a["unterminated', "a{\"not\": \"an array\"}", "a[1,2]", 'c[3000]', "", "hello"])
async def test_malformed_frame_websocket(hostile: Callable[[Script], Awaitable[str]], bad: str) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return ws_text("o") + ws_text(bad)

    url = await hostile(script)
    async with connect(url, ["websocket"]) as conn:
        with pytest.raises(ProtocolError, match="malformed frame"):
            await conn.recv(timeout=5)


async def test_bad_websocket_frame(hostile: Callable[[Script], Awaitable[str]]) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return ws_text("o") + build_frame(1, b"\xff\xfe not utf-8")

    url = await hostile(script)
    async with connect(url, ["websocket"]) as conn:
        with pytest.raises(ProtocolError, match="UTF-8"):
            await conn.recv(timeout=5)


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling"])
async def test_wrong_content_type(hostile: Callable[[Script], Awaitable[str]], transport: str) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return response(200, "o\n", "text/html")

    url = await hostile(script)
    with pytest.raises(ProtocolError, match="wrong content type 'text/html'"):
        await connect(url, [transport], timeout=5)


async def test_info_not_json(hostile: Callable[[Script], Awaitable[str]]) -> None:
    server = await asyncio.start_server(
        lambda r, w: w.write(response(200, "<html>", "text/html")), "127.0.0.1", 0
    )
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/svc"
        with pytest.raises(ProtocolError, match="/svc/info: wrong content type"):
            await connect(url, timeout=5)
    finally:
        server.close()


async def test_early_eof_in_a_poll(hostile: Callable[[Script], Awaitable[str]]) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        if n == 1:
            return response(200, "o\n")
        # Content-Length promises more than comes, then the connection closes.
        return response(200, 'a["all of it"]\n')[:-6] + EOF

    url = await hostile(script)
    async with connect(url, ["xhr-polling"]) as conn:
        with pytest.raises(ConnectionLost, match="early EOF") as info:
            await conn.recv(timeout=5)
        assert info.value.code == 1006


async def test_early_eof_in_a_stream(hostile: Callable[[Script], Awaitable[str]]) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        # Chunked, cut inside a chunk, then the connection closes.
        return (
            f"HTTP/1.1 200 OK\r\nContent-Type: {JS}\r\nTransfer-Encoding: chunked\r\n\r\n"
            "2\r\no\n\r\n20\r\na[\"cut".encode() + EOF
        )

    url = await hostile(script)
    async with connect(url, ["xhr-streaming"]) as conn:
        with pytest.raises(ConnectionLost, match="early EOF"):
            await conn.recv(timeout=5)


async def test_404_on_the_session(hostile: Callable[[Script], Awaitable[str]]) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        if kind == "xhr_send":
            return response(404, "Not found", "text/plain")
        return response(200, "o\n") if n == 1 else None  # then a poll that never ends

    url = await hostile(script)
    async with connect(url, ["xhr-polling"]) as conn:
        await conn.send("anyone there?")
        with pytest.raises(ConnectionLost, match="session not found") as info:
            await conn.recv(timeout=5)
        assert info.value.code == 1006
        assert conn.close_code == 1006


async def test_second_open_frame_is_a_lost_session(
    hostile: Callable[[Script], Awaitable[str]],
) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return response(200, "o\n")  # every poll: the server forgot the session

    url = await hostile(script)
    async with connect(url, ["xhr-polling"]) as conn:
        with pytest.raises(ConnectionLost, match="Server lost session"):
            await conn.recv(timeout=5)


async def test_silent_server_times_out(hostile: Callable[[Script], Awaitable[str]]) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return None  # accepts the request, never answers

    url = await hostile(script)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectError) as info:
        await connect(url, timeout=0.3)
    assert set(info.value.errors) == {"websocket", "xhr-streaming", "xhr-polling"}
    assert loop.time() - started < 10


async def test_silent_session_is_lost_after_heartbeat_timeout(
    hostile: Callable[[Script], Awaitable[str]],
) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return response(200, "o\n") if n == 1 else None

    url = await hostile(script)
    async with connect(url, ["xhr-polling"], heartbeat_timeout=0.3) as conn:
        with pytest.raises(ConnectionLost):
            await conn.recv(timeout=5)


async def test_recv_timeout(hostile: Callable[[Script], Awaitable[str]]) -> None:
    async def script(kind: str, n: int) -> bytes | None:
        return ws_text("o")

    url = await hostile(script)
    async with connect(url, ["websocket"]) as conn:
        with pytest.raises(TimeoutError):
            await conn.recv(timeout=0.1)
        assert not conn.closed
        # This server never answers a close: close() still ends within its timeout.
        await conn.close(timeout=0.2)


async def test_keep_alive_over_chunked_polls() -> None:
    """Chunked poll responses and 204 sends reuse their connections (llhttp's
    keep-alive flag must be read at the head, not after the chunked body)."""
    connections = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        polls = 0
        while (req := await _read_request(reader)) is not None:
            path = req[0]
            if path.endswith("/info"):
                writer.write(response(200, INFO, "application/json"))
            elif path.endswith("/xhr_send"):
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n")
            else:
                polls += 1
                frame = b"o\n" if polls == 1 else b'a["%d"]\n' % polls
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: " + JS.encode()
                    + b"\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(frame), frame)
                )
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/svc"
        async with connect(url, ["xhr-polling"]) as conn:
            for i in range(2, 12):
                assert await conn.recv(timeout=5) == str(i)
            await conn.send("x")
            await conn.flush(timeout=5)
        # /info's connection carries the polls; xhr_send has its own.
        assert len(connections) <= 2
    finally:
        server.close()
