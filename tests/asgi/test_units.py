"""SockJSApp and its helpers driven directly (no server): scope paths,
detection, 404s, lifespan with and without a fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastsockjs import Listener, apps
from fastsockjs.aio import forward
from fastsockjs.asgi import SockJSApp, is_asgi_app
from fastsockjs.protocol.asgi import paths


@pytest.mark.parametrize(
    "scope, expected",
    [
        ({"path": "/echo/info"}, ("/echo/info", "/echo/info")),
        # Starlette >= 0.33 Mount / uvicorn --root-path: path is the full path.
        ({"path": "/api/echo/info", "root_path": "/api"}, ("/echo/info", "/api/echo/info")),
        # Older Starlette Mount: path is what is left below root_path.
        ({"path": "/echo/info", "root_path": "/api"}, ("/echo/info", "/api/echo/info")),
        ({"path": "/api", "root_path": "/api"}, ("", "/api")),
        # raw_path kept when consistent (ids are not decoded, as the native server sees them).
        ({"path": "/e/a b/c", "raw_path": b"/e/a%20b/c"}, ("/e/a%20b/c", "/e/a%20b/c")),
        ({"path": "/x/e/a b", "raw_path": b"/x/e/a%20b", "root_path": "/x"},
         ("/e/a%20b", "/x/e/a%20b")),
        # raw_path that does not agree with path (a middleware rewrote path): path wins.
        ({"path": "/new", "raw_path": b"/old"}, ("/new", "/new")),
        # A root_path that is only a string prefix of path is not where path is.
        ({"path": "/apix/echo", "root_path": "/api"}, ("/apix/echo", "/api/apix/echo")),
    ],
)
def test_paths(scope: dict[str, Any], expected: tuple[str, str]) -> None:
    assert paths(scope) == expected


def test_detection_and_wrapping_as_a_listener_fallback() -> None:
    async def asgi(scope: Any, receive: Any, send: Any) -> None: ...

    class AsgiClass:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    def classic(request: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        return 200, [], b""

    assert is_asgi_app(asgi) and is_asgi_app(AsgiClass()) and is_asgi_app(SockJSApp())
    assert not is_asgi_app(classic) and not is_asgi_app(print) and not is_asgi_app(42)
    # A Listener serves an ASGI fallback through forward(), and anything else as it is.
    listener = Listener(classic)
    assert listener.fallback is classic
    listener.fallback = asgi
    wrapped = listener.fallback
    assert wrapped.app is asgi
    listener.fallback = wrapped
    assert listener.fallback is wrapped
    listener.fallback = None
    assert listener.fallback is None
    with pytest.raises(ValueError):
        forward(asgi, lifespan="sometimes")


class Driver:
    """Feeds one scope's messages in, collects what the app sends."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.incoming:
            return self.incoming.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def http_scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": [], "query_string": b"",
            "http_version": "1.1", "client": ("127.0.0.1", 5), "root_path": ""}


def test_answers_without_a_server() -> None:
    app = SockJSApp(apps.echo(prefix="/echo"))

    async def main() -> None:
        d = Driver({"type": "http.request", "body": b""})
        await app(http_scope("/echo"), d.receive, d.send)
        assert d.sent[0]["status"] == 200 and d.sent[1]["body"] == b"Welcome to SockJS!\n"
        d = Driver({"type": "http.request", "body": b""})
        await app(http_scope("/elsewhere"), d.receive, d.send)
        assert d.sent[0]["status"] == 404
        # A WebSocket outside every prefix: denial response, or a plain refusal.
        for extensions, first in (
            ({"websocket.http.response": {}}, "websocket.http.response.start"),
            ({}, "websocket.close"),
        ):
            d = Driver({"type": "websocket.connect"})
            scope = {**http_scope("/elsewhere"), "type": "websocket", "extensions": extensions}
            await app(scope, d.receive, d.send)
            assert d.sent[0]["type"] == first
        # A body over max_body: 413, as the native server answers it.
        small = SockJSApp(apps.echo(prefix="/e", max_message_size=10), max_body=10)
        d = Driver({"type": "http.request", "body": b"x" * 6, "more_body": True},
                   {"type": "http.request", "body": b"x" * 6})
        await small(http_scope("/e/a/b/xhr_send", "POST"), d.receive, d.send)
        assert d.sent[0]["status"] == 413

    asyncio.run(main())


def test_lifespan_alone_and_with_a_fallback_that_has_none() -> None:
    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan? never heard of it")

    for fallback in (None, no_lifespan):
        app = SockJSApp(apps.echo(prefix="/echo"), fallback=fallback)

        async def main(app: SockJSApp = app) -> list[str]:
            d = Driver({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
            await app({"type": "lifespan"}, d.receive, d.send)
            return [m["type"] for m in d.sent]

        assert asyncio.run(main()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_access_log_lines_as_the_native_server_writes_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = SockJSApp(apps.echo(prefix="/echo"))
    caplog.set_level("INFO", logger="fastsockjs.access")

    async def main() -> None:
        for path, method in (("/echo/info", "GET"), ("/echo/nope/x/y", "GET")):
            d = Driver({"type": "http.request", "body": b""})
            await app(http_scope(path, method), d.receive, d.send)

    asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if r.name == "fastsockjs.access"]
    assert any(line.startswith("127.0.0.1 - GET /echo/info HTTP/1.1 200 ") for line in lines), lines
    assert any("GET /echo/nope/x/y HTTP/1.1 404" in line for line in lines), lines
