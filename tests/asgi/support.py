"""uvicorn (``--http h11``) running an ASGI app in a thread, on a free port;
the same surface as tests.helpers.ServerThread (``port``, ``url``, ``call``,
``servers``) so the integration tests run against it unchanged."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from tests.helpers import TIMEOUT


class UvicornThread:
    """``make_app()`` returns ``(asgi_app, servers)``; it runs on the server's loop."""

    @property
    def listener(self) -> Any:
        """The SockJS host the tests ask (as ServerThread's): endpoints, stats()."""
        app = self.app
        while app is not None and not hasattr(app, "endpoints"):
            app = getattr(app, "app", None)  # (a middleware around the SockJSApp)
        return app

    def __init__(
        self,
        make_app: Callable[[], tuple[Any, list[Any]]],
        loop_kind: str = "asyncio",
        ws: str = "auto",
        **config: Any,
    ) -> None:
        self.make_app = make_app
        self.loop_kind = loop_kind
        self.ws = ws
        self.config = config
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: Any = None
        self.servers: list[Any] = []
        self.server: uvicorn.Server | None = None
        self.port = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.loop_kind == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        try:
            self.app, self.servers = loop.run_until_complete(self._make())
            options: dict[str, Any] = {
                "http": "h11",
                "ws": self.ws,
                "lifespan": "on",
                "log_level": "warning",
                "access_log": False,
                "timeout_graceful_shutdown": 3,
            }
            options.update(self.config)
            self.server = uvicorn.Server(uvicorn.Config(self.app, **options))
            loop.run_until_complete(self.server.serve(sockets=[sock]))
        except BaseException as exc:
            self._error = exc
            logging.getLogger("tests").exception("uvicorn thread failed")
        finally:
            sock.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _make(self) -> tuple[Any, list[Any]]:
        return self.make_app()

    def start(self) -> UvicornThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            if self.server is not None and self.server.started:
                return self
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        raise RuntimeError(f"uvicorn did not start: {self._error!r}")

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result."""
        assert self.loop is not None
        done = threading.Event()
        box: list[Any] = []

        def wrapper() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

        self.loop.call_soon_threadsafe(wrapper)
        if not done.wait(TIMEOUT):
            raise TimeoutError("server loop did not answer")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        if self.server is not None and self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(setattr, self.server, "should_exit", True)
            self._thread.join(20)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class AsgiServerThread(UvicornThread):
    """tests.helpers.ServerThread's signature, serving the Servers through
    SockJSApp under uvicorn: lets tests that build their own ServerThread run
    against the ASGI app. ``listener`` is the SockJSApp's (never listening)
    Listener; Listener-only keyword arguments (timeouts, header limits) are
    the ASGI server's business and are ignored."""

    def __init__(
        self,
        make_servers: Callable[[], list[Any]],
        loop_kind: str = "asyncio",
        fallback: Any = None,
        ws: str = "auto",
        **listener_kwargs: Any,
    ) -> None:
        from fastsockjs.asgi import SockJSApp

        def make() -> tuple[Any, list[Any]]:
            servers = make_servers()
            options = {"max_body": listener_kwargs["max_body"]} if "max_body" in listener_kwargs \
                else {}
            return SockJSApp(*servers, fallback=fallback, shutdown_timeout=0.5, **options), servers

        super().__init__(make, loop_kind, ws=ws)

    @property
    def listener(self) -> Any:
        return self.app  # what the tests ask of a host: endpoints, stats(), shutdown()
