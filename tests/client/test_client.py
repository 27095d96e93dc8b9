"""fastsockjs.client against fastsockjs and sockjs-node 0.3.24, on each transport."""

from __future__ import annotations

import asyncio

import pytest

from fastsockjs.client import ConnectionClosed, ConnectionLost, connect
from tests.client.conftest import ServeFn
from tests.client.sticky import StickyProxy

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"]

# Non-ASCII on purpose: accents, CJK, an emoji (a surrogate pair in JavaScript),
# and the characters SockJS escapes (U+2028, U+200C, U+FEFF, U+FFFE).
SAMPLES = ["hello", "żółw ü", "漢字", "😀 smile", "\u2028\u2029\u200c\ufeff\ufffe", '"\\/\n\t']


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_echo_1000_messages_and_64k(sockjs_server: ServeFn, transport: str) -> None:
    messages = [f"{i} {SAMPLES[i % len(SAMPLES)]}" for i in range(1000)]
    big = "".join(chr(0x41 + i % 26) for i in range(64 * 1024 - 8)) + "€€€€"  # 64 KiB+ in UTF-8
    async with sockjs_server() as (url, _), connect(url + "/echo", [transport]) as conn:
        assert conn.transport == transport
        assert len(conn.server_id) == 3 and conn.server_id.isdigit()
        assert len(conn.session_id) == 8
        for m in messages:
            await conn.send(m)
        await conn.send(big)
        got = [await conn.recv(timeout=20) for _ in range(len(messages) + 1)]
        assert got[:-1] == messages
        assert got[-1] == big
        await conn.close(1000, "bye")
    assert (conn.close_code, conn.close_reason) == (1000, "bye")
    with pytest.raises(ConnectionClosed):
        await conn.recv(timeout=1)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_close_3000(sockjs_server: ServeFn, transport: str) -> None:
    async with sockjs_server() as (url, _), connect(url + "/close", [transport]) as conn:
        with pytest.raises(ConnectionClosed) as info:
            await conn.recv(timeout=10)
        assert (info.value.code, info.value.reason) == (3000, "Go away!")
        assert not isinstance(info.value, ConnectionLost)
        assert (conn.close_code, conn.close_reason) == (3000, "Go away!")
        # A clean close ends `async for` without an error.
        assert [m async for m in conn] == []
        with pytest.raises(ConnectionClosed):
            await conn.send("too late")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_heartbeats(sockjs_server: ServeFn, transport: str) -> None:
    """/heartbeat has a 200 ms heartbeat_delay: a quiet session sees several, and
    over xhr-polling each ends a long poll that is then renewed."""
    async with sockjs_server() as (url, _), connect(
        url + "/heartbeat", [transport], heartbeat_timeout=2.0
    ) as conn:
        seen = asyncio.Event()
        conn.on("heartbeat", lambda: conn.heartbeats >= 3 and seen.set())
        await asyncio.wait_for(seen.wait(), 10)
        # The session still works after the quiet spell.
        await conn.send("after heartbeats")
        assert await conn.recv(timeout=5) == "after heartbeats"
        assert not conn.closed


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_jsessionid_cookie_round_trip(sockjs_server: ServeFn, transport: str) -> None:
    """A sticky balancer sets JSESSIONID on the first response; every later
    request (the WebSocket upgrade, polls, xhr_send) carries it back."""
    async with sockjs_server() as (url, _):
        proxy = await StickyProxy(int(url.rsplit(":", 1)[1])).start()
        try:
            base = f"http://127.0.0.1:{proxy.port}/cookie_needed_echo"
            async with connect(base, [transport]) as conn:
                assert conn.info["cookie_needed"] is True
                for i in range(3):
                    await conn.send(f"m{i}")
                    assert await conn.recv(timeout=5) == f"m{i}"
                assert conn.cookies["JSESSIONID"] == "sticky-1"
        finally:
            await proxy.close()
    first, *later = proxy.requests
    assert first[0].endswith("/info") and first[1] is None
    assert later, proxy.requests
    kinds = {path.rsplit("/", 1)[1] for path, _ in later}
    wanted = {"websocket"} if transport == "websocket" else {"xhr_send"}
    assert wanted <= kinds, proxy.requests
    for path, cookie in later:
        assert cookie == "JSESSIONID=sticky-1", (path, cookie)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_session_lost_over_restart(sockjs_server: ServeFn, transport: str) -> None:
    async with sockjs_server() as (url, restart), connect(
        url + "/echo", [transport], heartbeat_timeout=5.0
    ) as conn:
        await conn.send("before")
        assert await conn.recv(timeout=5) == "before"
        closed = asyncio.Event()
        conn.on("close", closed.set)
        await restart()
        with pytest.raises(ConnectionLost) as info:
            await conn.recv(timeout=15)
        assert info.value.code == 1006
        assert closed.is_set()
        assert conn.closed and conn.close_code == 1006
        with pytest.raises(ConnectionLost):
            async for _ in conn:
                pass
