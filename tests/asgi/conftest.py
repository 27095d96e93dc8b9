"""``ts`` here is the test-server services (as tests/conftest.py's) served by
fastsockjs.asgi.SockJSApp under uvicorn --http h11, on both event loops and
each of uvicorn's three WebSocket implementations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("uvicorn")

from fastsockjs.asgi import SockJSApp
from fastsockjs.cli import testserver
from tests.asgi.support import UvicornThread

SOCKJS_URL = "http://127.0.0.1/static/sockjs.min.js"

#: (event loop, uvicorn WebSocket implementation): each of uvicorn's three
#: (``--ws websockets-sansio``, the legacy ``--ws websockets``, ``--ws wsproto``),
#: the two loops spread over them.
FLAVOURS = [
    ("asyncio", "websockets-sansio"),
    ("uvloop", "websockets"),
    ("uvloop", "wsproto"),
]


def make_testserver_app() -> tuple[SockJSApp, list]:  # type: ignore[type-arg]
    servers = testserver(SOCKJS_URL)
    return SockJSApp(*servers, shutdown_timeout=0.5), servers


@pytest.fixture(scope="module", params=FLAVOURS, ids=["-".join(f) for f in FLAVOURS])
def flavour(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def loop_kind(flavour: tuple[str, str]) -> str:
    return flavour[0]


@pytest.fixture(scope="module")
def ts(flavour: tuple[str, str]) -> Iterator[UvicornThread]:
    server = UvicornThread(make_testserver_app, flavour[0], ws=flavour[1]).start()
    yield server
    server.stop()
