"""Options: defaults, sockjs-node spellings, and refusal of bad values at construction."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fastsockjs import OptionsError, Server
from fastsockjs.options import Options, make_options


def test_defaults() -> None:
    o = Options()
    assert (o.heartbeat_delay, o.disconnect_delay) == (25.0, 5.0)
    assert o.response_limit == 128 * 1024 and o.max_message_size == 1024 * 1024
    assert o.max_outbox_bytes >= 1024 * 1024 and o.max_outbox_messages >= 1000
    assert o.max_sessions is None and o.allowed_origins is None
    assert o.websocket and not o.disable_cors and o.jsessionid is False
    assert (o.ws_ping_interval, o.ws_ping_timeout) == (25.0, 20.0)


def test_sockjs_node_spellings() -> None:
    o = make_options(prefix="/echo", heartbeat_delay=1.5, disabled_transports="xhr-polling")
    assert o.prefix == "/echo" and o.heartbeat_delay == 1.5
    assert not o.enabled("xhr-polling") and o.enabled("xhr-streaming")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"heartbeat_delay": 25000}, "over an hour"),  # sockjs-node's milliseconds
        ({"disconnect_delay": 5000.0}, "over an hour"),
        ({"heartbeat_delay": float("nan")}, "positive number"),
        ({"disconnect_delay": float("inf")}, "positive number"),
        ({"ws_ping_timeout": float("nan")}, "positive number"),
        ({"heartbeat_delay": 0}, "positive number"),
        ({"disconnect_delay": True}, "positive number"),
        ({"websocket": "no"}, "True or False"),
        ({"disable_cors": 1}, "True or False"),
        ({"logger": "fastsockjs"}, "logging.Logger"),
        ({"disabled_transports": ["xhr-polling", "carrier-pigeon"]}, "unknown transports"),
        ({"response_limit": 0}, "positive integer"),
        ({"max_message_size": 1.5}, "positive integer"),
        ({"max_sessions": 0}, "max_sessions"),
        ({"slow_client_policy": "ignore"}, "slow_client_policy"),
        ({"prefix": "/echo/"}, "trailing slash"),
        ({"prefix": "echo"}, "prefix"),
        ({"sockjs_url": 'x"><script>'}, "sockjs_url"),
        ({"jsessionid": "yes"}, "jsessionid"),
        ({"allowed_origins": [""]}, "allowed_origins"),
        ({"no_such_option": 1}, "unknown option"),
    ],
)
def test_bad_values_fail_at_construction(options: dict[str, Any], says: str) -> None:
    with pytest.raises(OptionsError, match=says):
        Server(**options)


def test_a_logger_or_adapter_is_accepted() -> None:
    Server(logger=logging.getLogger("mine"))
    Server(logger=logging.LoggerAdapter(logging.getLogger("mine"), {"x": 1}))


def test_a_jsessionid_hook_cannot_inject_headers() -> None:
    from types import SimpleNamespace

    from fastsockjs.protocol.http import HttpError, jsessionid_header

    request = SimpleNamespace(cookies=lambda: {"JSESSIONID": "abc\r\nX-Evil: 1"})

    def echo_cookie(cookies: dict[str, str]) -> str:
        return f"JSESSIONID={cookies['JSESSIONID']}; path=/"

    out: list[tuple[str, str]] = []
    with pytest.raises(HttpError) as err:
        jsessionid_header(request, echo_cookie, out)  # type: ignore[arg-type]
    assert err.value.status == 500 and out == []
    jsessionid_header(SimpleNamespace(cookies=lambda: {"JSESSIONID": "abc"}), echo_cookie, out)  # type: ignore[arg-type]
    assert out == [("Set-Cookie", "JSESSIONID=abc; path=/")]
