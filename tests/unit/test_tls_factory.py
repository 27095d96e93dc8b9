"""fastsockjs.aio.tls: which loops get the logged handshake, and what the others get."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from fastsockjs.aio.tls import tls_protocol_factory


class OtherLoop(asyncio.AbstractEventLoop):
    """A loop that is neither asyncio's nor uvloop's (its TLS protocol is unknown)."""


def test_an_unknown_loop_gets_no_factory() -> None:
    # Listener.listen then passes ssl= to create_server as before (unlogged).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert tls_protocol_factory(OtherLoop(), asyncio.Protocol, context, 1.0) is None


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_known_loops_get_their_own_tls_protocol_around_ours(loop_kind: str) -> None:
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        made: list[asyncio.Protocol] = []

        def app() -> asyncio.Protocol:
            made.append(asyncio.Protocol())
            return made[-1]

        factory = tls_protocol_factory(loop, app, context, 1.0)
        assert factory is not None
        protocol = factory()
        # The loop's TLS protocol class (a subclass of it), wrapping a fresh app protocol.
        expected = "uvloop.loop" if loop_kind == "uvloop" else "asyncio.sslproto"
        assert any(c.__module__ == expected and c.__name__ == "SSLProtocol"
                   for c in type(protocol).__mro__)
        assert len(made) == 1
    finally:
        loop.close()
