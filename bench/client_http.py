"""Which HTTP client should fastsockjs.client's xhr transports use? Measured here.

Runs ``fastsockjs echo`` in a child process, then drives one xhr-polling
session with each HTTP client: N round trips of ``xhr_send`` + ``xhr`` (keep-alive,
one connection each way), and reports round trips per second. Then the whole
client (``fastsockjs.client.connect``) echoing messages on each transport.

    python -m bench.client_http [--n 2000]

aiohttp and httpx are measured only when installed (pip install aiohttp httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from fastsockjs.client import connect
from fastsockjs.client.http import CookieJar, HttpClient
from fastsockjs.client.protocol import Base

RoundTrip = Callable[[str, bytes], Awaitable[bytes]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def own(base: str, n: int) -> float:
    http = HttpClient(Base.parse(base), headers=[], cookies=CookieJar())

    async def post(path: str, body: bytes) -> bytes:
        r = await http.request("POST", Base.parse(base).path + path, body=body, timeout=5)
        return await r.read(5)

    try:
        return await session(post, n)
    finally:
        await http.aclose()


async def with_httpx(base: str, n: int) -> float:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=5) as client:

        async def post(path: str, body: bytes) -> bytes:
            return (await client.post(path.lstrip("/"), content=body)).content

        client.base_url = base + "/"
        return await session(post, n)


async def with_aiohttp(base: str, n: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as client:

        async def post(path: str, body: bytes) -> bytes:
            async with client.post(base + path, data=body) as r:
                return await r.read()

        return await session(post, n)


async def session(post: RoundTrip, n: int) -> float:
    sid = f"/000/{uuid.uuid4().hex[:8]}"
    assert await post(sid + "/xhr", b"") == b"o\n"
    started = time.perf_counter()
    for i in range(n):
        await post(sid + "/xhr_send", b'["m%d"]' % i)
        assert await post(sid + "/xhr", b"") == b'a["m%d"]\n' % i
    return n / (time.perf_counter() - started)


async def whole_client(base: str, transport: str, n: int) -> float:
    async with connect(base, [transport]) as conn:
        started = time.perf_counter()
        for i in range(n):
            await conn.send(f"m{i}")
        for _ in range(n):
            await conn.recv(timeout=30)
        return n / (time.perf_counter() - started)


async def main(n: int) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "fastsockjs", "echo", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/echo"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            await asyncio.sleep(0.05)
        print(f"xhr-polling round trips (xhr_send + xhr), n={n}, round trips/s:")
        for name, fn in (("own (httptools)", own), ("httpx", with_httpx), ("aiohttp", with_aiohttp)):
            try:
                rate = max([await fn(base, n) for _ in range(3)])
            except ImportError:
                print(f"  {name:18} not installed")
                continue
            print(f"  {name:18} {rate:8.0f}")
        print(f"fastsockjs.client, {n * 5} messages sent then received, messages/s:")
        for transport in ("websocket", "xhr-streaming", "xhr-polling"):
            rate = max([await whole_client(base, transport, n * 5) for _ in range(3)])
            print(f"  {transport:18} {rate:8.0f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(main(parser.parse_args().n))
