"""fastsockjs echo + broadcast server for ``python -m bench.load`` (public API only).

Usage: ``python -m bench.load.fastsockjs_server [--port 0] [--no-uvloop] [--cprofile FILE]``;
prints ``READY <port> <implementation>`` once listening, stops on SIGTERM/SIGINT.
``FASTSOCKJS_PURE_PYTHON=1`` in the environment selects the pure-Python kernels.

Mounts, with default options (as bench/node/server.js does for sockjs-node):
``/echo`` (every message back to its sender) and ``/broadcast`` (every message to
every open session, the sender included).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import fastsockjs
from fastsockjs import frames


def make_servers() -> list[fastsockjs.Server]:
    echo = fastsockjs.Server(prefix="/echo")

    @echo.on("connection")
    def _echo(conn: fastsockjs.Connection) -> None:
        conn.on("data", conn.write)

    broadcast = fastsockjs.Server(prefix="/broadcast")
    members: dict[str, fastsockjs.Connection] = {}

    @broadcast.on("connection")
    def _member(conn: fastsockjs.Connection) -> None:
        members[conn.id] = conn
        conn.on("close", lambda: members.pop(conn.id, None))
        conn.on("data", lambda message: broadcast.broadcast(message, list(members.values())))

    return [echo, broadcast]


async def serve(port: int) -> None:
    listener = fastsockjs.Listener()
    for server in make_servers():
        server.install_handlers(listener)
    await listener.listen("127.0.0.1", port, backlog=4096)
    print("READY", listener.port, frames.impl.IMPLEMENTATION, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await listener.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--cprofile", default=None, help="write a cProfile dump here on exit")
    args = p.parse_args(argv)
    loop = asyncio.new_event_loop() if args.no_uvloop else fastsockjs.new_event_loop()
    asyncio.set_event_loop(loop)
    profiler: Any = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        loop.run_until_complete(serve(args.port))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        loop.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
