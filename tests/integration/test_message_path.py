"""The files one message crosses, socket to handler and back, as
docs/architecture.md lists them (issue 11 asks for few; this keeps the
document true).

A profiler hook records every Python function of the package that runs from
the moment the client's bytes are written until the echo has been read back,
on a server whose loop runs in the same thread. That server runs in a child
process with ``FASTSOCKJS_PURE_PYTHON=1``, so that the HTTP connection, which
is compiled from its source ``aio/_connection_py.py``, counts as the file a
reader reads. The kernels (``frames``/``heads``, their twins, the picker) are
counted apart: docs/architecture.md names them beside each path.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import fastsockjs
from fastsockjs import Listener, Server

PACKAGE = Path(fastsockjs.__file__).parent
DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
#: The kernel layer: pickers, twins, and the picker of the compiled modules.
KERNELS = {"_frames_py.py", "_http_py.py", "frames.py", "heads.py", "kernels.py"}


def documented(path_name: str) -> set[str]:
    """The files docs/architecture.md names for ``path_name`` ("websocket" or
    "xhr-polling"), from its line ``Files on the <name> path: `a`, `b`.``"""
    text = DOC.read_text()
    match = re.search(rf"^Files on the {re.escape(path_name)} path[^:]*:(.*?)\.$", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"docs/architecture.md has no 'Files on the {path_name} path' line"
    return set(re.findall(r"`([\w/.]+\.py)`", match.group(1)))


def run_traced(loop_kind: str,
               exchange: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]) -> Counter:
    """Start an echo server, let ``exchange(port)`` set up its session and return
    the one round trip to trace; the Python calls of the package during it."""
    calls: Counter = collections.Counter()
    prefix = str(PACKAGE) + os.sep

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            name = frame.f_code.co_filename
            if name.startswith(prefix):
                calls[(name[len(prefix):].replace(os.sep, "/"), frame.f_code.co_qualname)] += 1

    async def main() -> None:
        server = Server(prefix="/echo")
        server.on("connection", lambda conn: conn.on("data", conn.write))
        listener = Listener()
        server.install_handlers(listener)
        await listener.listen("127.0.0.1", 0)
        try:
            round_trip = await asyncio.wait_for(exchange(listener.port), 10)
            sys.setprofile(profile)
            try:
                await asyncio.wait_for(round_trip(), 10)
            finally:
                sys.setprofile(None)
        finally:
            await listener.close()

    if loop_kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return calls


Counter = collections.Counter[tuple[str, str]]


def files(calls: Counter) -> set[str]:
    return {name for name, _ in calls if name not in KERNELS}


def traced_in_child(loop_kind: str, path_name: str) -> Counter:
    """run_traced in a child process with the pure-Python modules."""
    env = dict(os.environ, FASTSOCKJS_PURE_PYTHON="1")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.test_message_path", loop_kind, path_name],
        cwd=DOC.parents[1], env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return collections.Counter({(f, q): n for f, q, n in json.loads(proc.stdout)})


async def websocket(port: int) -> Callable[[], Awaitable[None]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /echo/000/ws/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    assert await reader.readexactly(3) == b"\x81\x01o"

    def frame(text: str) -> bytes:
        payload = text.encode()
        return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload

    async def echo(text: str) -> None:
        writer.write(frame(f'["{text}"]'))
        reply = b'a["' + text.encode() + b'"]'
        assert await reader.readexactly(2 + len(reply)) == bytes([0x81, len(reply)]) + reply

    for _ in range(3):  # warm: the first messages set up what later ones reuse
        await echo("w")

    return lambda: echo("x")


async def xhr_polling(port: int) -> Callable[[], Awaitable[None]]:
    poll_r, poll_w = await asyncio.open_connection("127.0.0.1", port)
    send_r, send_w = await asyncio.open_connection("127.0.0.1", port)

    def post(what: str, body: bytes = b"") -> bytes:
        return (f"POST /echo/000/xs/{what} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    poll_w.write(post("xhr"))
    await poll_r.readuntil(b"o\n")

    async def held_poll() -> None:
        """A poll the server holds: sent, and seen waiting in its session."""
        poll_w.write(post("xhr"))
        await poll_w.drain()
        await asyncio.sleep(0.05)

    async def send(text: str) -> None:
        send_w.write(post("xhr_send", f'["{text}"]'.encode()))
        await send_r.readuntil(b"\r\n\r\n")
        await poll_r.readuntil(f'a["{text}"]\n'.encode())

    for _ in range(3):
        await held_poll()
        await send("w")
    await held_poll()

    async def round_trip() -> None:
        await send("x")
        # (Holding both writers until here: a writer collected early closes its
        # connection, and with it the held poll.)
        assert not poll_w.is_closing() and not send_w.is_closing()

    return round_trip


EXCHANGES = {"websocket": websocket, "xhr-polling": xhr_polling}


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("path_name", list(EXCHANGES))
def test_files_on_the_path_are_the_documented_ones(loop_kind: str, path_name: str) -> None:
    calls = traced_in_child(loop_kind, path_name)
    # The hook saw the message through: in (the handler's data event) and out.
    qualnames = {q for _, q in calls}
    assert "Connection.write" in qualnames, sorted(calls)
    assert "Session.flush" in qualnames, sorted(calls)
    seen = files(calls)
    assert seen == documented(path_name), "\n".join(f"{f} {q}" for f, q in sorted(calls))


def test_the_documented_lists_are_read() -> None:
    # (A heading or wording change must not leave the test above comparing empty sets.)
    assert len(documented("websocket")) >= 4
    assert len(documented("xhr-polling")) >= 4


if __name__ == "__main__":  # the child of traced_in_child: loop kind, path name
    found = run_traced(sys.argv[1], EXCHANGES[sys.argv[2]])
    print(json.dumps([[f, q, n] for (f, q), n in found.items()]))
