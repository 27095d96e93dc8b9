"""The command line's --allowed-origin, --max-message-size and
--forwarded-allow-ips: what the Servers and the Listener get, for echo, chat,
testserver and run targets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fastsockjs import Server
from fastsockjs.broker import MemoryBroker
from fastsockjs.cli import build_servers, parser

ROOT = Path(__file__).resolve().parents[2]


def servers_for(*argv: str) -> list[Server]:
    args = parser().parse_args(list(argv))
    return build_servers(args, "/sockjs.js", {}, MemoryBroker())


@pytest.mark.parametrize("command", [["echo"], ["chat"], ["testserver"],
                                     ["run", "tests.integration.test_cli_policy:factory"]])
def test_policy_flags_reach_every_server(command: list[str]) -> None:
    servers = servers_for(*command, "--allowed-origin", "https://a.example",
                          "--allowed-origin", "https://*.b.example", "--max-message-size", "2048")
    assert servers
    for server in servers:
        assert server.options.allowed_origins == ("https://a.example", "https://*.b.example")
        assert server.options.max_message_size == 2048
    defaults = servers_for(*command)
    assert all(s.options.allowed_origins is None for s in defaults)
    assert all(s.options.max_message_size == 1024 * 1024 for s in defaults)


def factory() -> Server:
    return Server(prefix="/app")


@pytest.mark.parametrize("flags,message", [
    (["--forwarded-allow-ips", "10.0.0.0/8,nope"], "--forwarded-allow-ips"),
    (["--max-message-size", "0"], "--max-message-size"),
    (["--allowed-origin", ""], "allowed_origins"),
])
def test_bad_values_are_refused(flags: list[str], message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "fastsockjs", "echo", "--port", "0", *flags],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode != 0 and message in r.stderr, r.stderr
