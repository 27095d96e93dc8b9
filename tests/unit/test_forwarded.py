"""The client-address rule both hosts share (protocol.http.TrustedProxies)."""

from __future__ import annotations

import pytest

from fastsockjs.protocol.http import TrustedProxies, forwarded_hops

PEER = ("127.0.0.1", 5000)


def trusted(spec: str) -> TrustedProxies:
    t = TrustedProxies.parse(spec)
    assert t is not None
    return t


def test_parse() -> None:
    assert TrustedProxies.parse(None) is None
    assert TrustedProxies.parse(" , ") is None
    t = trusted("127.0.0.1, 10.0.0.0/8,::1")
    assert "127.0.0.1" in t and "10.2.3.4" in t and "::1" in t
    assert "11.0.0.1" not in t and None not in t and "not-an-ip" not in t
    assert "::ffff:10.0.0.7" in t  # IPv4-mapped, as a dual-stack socket reports it
    assert "anything" in trusted("*")
    assert "10.1.1.1" in TrustedProxies.parse(["10.1.1.1"])  # type: ignore[operator]
    with pytest.raises(ValueError, match="bogus"):
        TrustedProxies.parse("127.0.0.1,bogus")


def test_untrusted_peer_keeps_its_address() -> None:
    t = trusted("10.0.0.1")
    assert t.client(PEER, {"x-forwarded-for": "1.2.3.4"}) == PEER


def test_x_forwarded_for_right_to_left() -> None:
    t = trusted("127.0.0.1, 10.0.0.0/8")
    assert t.client(PEER, {}) == PEER
    assert t.client(PEER, {"x-forwarded-for": "1.2.3.4"}) == ("1.2.3.4", None)
    # A client's own X-Forwarded-For is left of what the proxies appended: never taken.
    assert t.client(PEER, {"x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.0.0.5"}) == ("1.2.3.4", None)
    # Every hop a trusted proxy: the leftmost.
    assert t.client(PEER, {"x-forwarded-for": "10.0.0.9, 10.0.0.5"}) == ("10.0.0.9", None)
    assert t.client(PEER, {"x-forwarded-for": " , "}) == PEER


def test_forwarded_header() -> None:
    t = trusted("127.0.0.1")
    value = 'for=6.6.6.6, for="[2001:db8::17]:4711";proto=https;by=127.0.0.1'
    assert forwarded_hops(value) == [("6.6.6.6", None), ("2001:db8::17", 4711)]
    assert t.client(PEER, {"forwarded": value}) == ("2001:db8::17", 4711)
    assert t.client(PEER, {"forwarded": "For=1.2.3.4:80"}) == ("1.2.3.4", 80)
    assert t.client(PEER, {"forwarded": "proto=https"}) == PEER
    # X-Forwarded-For wins when both are present.
    assert t.client(PEER, {"forwarded": "for=5.5.5.5", "x-forwarded-for": "1.2.3.4"}) == (
        "1.2.3.4", None)
