"""The benchmark's services through the ASGI host: ``fastsockjs.asgi.SockJSApp``
under uvicorn (httptools, uvloop), for ``python -m bench.load --server fastsockjs-asgi``.

Usage: ``python -m bench.load.asgi_server [--port 0] [--ws websockets-sansio|websockets|wsproto]
[--http httptools|h11] [--cprofile FILE]``; prints ``READY <port> <implementation>`` once
listening, stops on SIGTERM/SIGINT (uvicorn's own handlers).

The very same ``/echo`` and ``/broadcast`` Servers as bench/load/fastsockjs_server.py, with
uvicorn's default options otherwise: the difference measured is the host alone.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import Any

import uvicorn

from bench.load.fastsockjs_server import make_servers
from fastsockjs import frames
from fastsockjs.asgi import SockJSApp


async def serve(port: int, http: str, ws: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        SockJSApp(*make_servers()),
        http=http,
        ws=ws,
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise SystemExit("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    print("READY", sock.getsockname()[1], frames.impl.IMPLEMENTATION, flush=True)
    await task


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--http", default="httptools", choices=["httptools", "h11"])
    p.add_argument("--ws", default="websockets-sansio",
                   choices=["websockets-sansio", "websockets", "wsproto"])
    p.add_argument("--cprofile", default=None, help="write a cProfile dump here on exit")
    args = p.parse_args(argv)
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    profiler: Any = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        loop.run_until_complete(serve(args.port, args.http, args.ws))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        loop.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
