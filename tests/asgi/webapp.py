"""A small FastAPI application for the tests: JSON routes, a streamed
response, a WebSocket route and lifespan state, with SockJS mounted next to
them (``make_fastapi_with_sockjs``) or not (``make_fastapi``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse

from fastsockjs import apps
from fastsockjs.asgi import SockJSApp


def make_fastapi() -> FastAPI:
    events: dict[str, Any] = {"startup": 0, "shutdown": 0, "stream_closed": 0}
    release = asyncio.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events["startup"] += 1
        yield {"greeting": "from lifespan"}
        events["shutdown"] += 1

    app = FastAPI(lifespan=lifespan)
    app.state.events = events

    @app.get("/api/hello")
    async def hello(request: Request) -> dict[str, Any]:
        return {"hello": "world", "path": request.url.path,
                "lifespan": request.state.greeting}

    @app.post("/api/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = (await request.body()).decode()
        return {"got": body, "ctype": request.headers.get("content-type")}

    @app.get("/api/events")
    async def get_events() -> dict[str, Any]:
        return dict(events)

    @app.get("/api/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"first\n"
                await release.wait()
                yield b"second\n"
                yield b"third\n"
            finally:
                events["stream_closed"] += 1

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/api/release")
    async def do_release() -> dict[str, bool]:
        release.set()
        return {"released": True}

    @app.get("/api/forever")
    async def forever() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.02)
            finally:
                events["stream_closed"] += 1

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/api/plain", response_class=PlainTextResponse)
    async def plain() -> str:
        return "plain text"

    @app.websocket("/ws")
    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                if text == "bye":
                    await websocket.close(4001, "bye")
                    return
                await websocket.send_text("echo:" + text)
        except WebSocketDisconnect:
            pass

    @app.websocket("/ws-refused")
    async def ws_refused(websocket: WebSocket) -> None:
        await websocket.close()

    return app


def make_fastapi_with_sockjs() -> tuple[FastAPI, list[Any]]:
    """SockJS mounted inside FastAPI, both ways of saying the prefix:
    ``/echo`` keeps the Server's own prefix (matched on the full path),
    ``/close`` mounts a prefix-less Server (matched below root_path)."""
    app = make_fastapi()
    seen: list[str] = []
    echo = apps.echo(prefix="/echo")
    echo.on("connection", lambda conn: seen.append(conn.pathname))
    close = apps.close()
    app.mount("/echo", SockJSApp(echo, shutdown_timeout=0.5))
    app.mount("/close", SockJSApp(close, shutdown_timeout=0.5))
    app.state.seen = seen
    return app, [echo, close]
