"""fastsockjs echo + broadcast server for ``python -m bench.load`` (public API only).

Usage: ``python -m bench.load.fastsockjs_server [--port 0] [--no-uvloop] [--cprofile FILE]
[--gc MODE] [--gc-stats] [--ssl-certfile FILE --ssl-keyfile FILE]``; prints ``READY <port> <implementation>`` once listening, stops
on SIGTERM/SIGINT. ``FASTSOCKJS_PURE_PYTHON=1`` in the environment selects the
pure-Python kernels. With ``--ssl-certfile``/``--ssl-keyfile`` it serves https and
wss, with the context the CLI's flags of the same names build (``fastsockjs.ssl_context``).

Tail-latency experiments (``python -m bench.load.tail``), also from the environment
(``FASTSOCKJS_BENCH_GC``, ``FASTSOCKJS_BENCH_GC_STATS=1``): ``--gc`` picks what is done
with the cyclic garbage collector once start-up is over, just before READY:

* ``default``: nothing (CPython's thresholds, 700/10/10);
* ``freeze``: ``gc.collect()`` then ``gc.freeze()``: every object alive after start-up
  (modules, classes, the servers) moves to the permanent generation, so later full
  collections no longer traverse it;
* ``freeze-t<N>``: the same, and the young-generation threshold raised to N
  (``gc.set_threshold(N, 10, 10)``): fewer, larger young collections;
* ``off``: ``gc.disable()`` (the control: no collection at all).

``--gc-stats`` times every collection (``gc.callbacks``) after READY and prints one line
``GCSTATS {json}`` on stderr at exit: per generation, the count, total and longest pause.

Mounts, with default options (as bench/node/server.js does for sockjs-node):
``/echo`` (every message back to its sender) and ``/broadcast`` (every message to
every open session, the sender included).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import sys
import time
from typing import Any

import fastsockjs
from bench.load.serving import ready_until_stopped
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


def apply_gc_mode(mode: str) -> None:
    """What ``--gc`` asks for (see the module docstring)."""
    if mode == "default":
        return
    if mode == "off":
        gc.disable()
        return
    if mode == "freeze" or mode.startswith("freeze-t"):
        gc.collect()
        gc.freeze()
        if mode.startswith("freeze-t"):
            gc.set_threshold(int(mode[len("freeze-t") :]), 10, 10)
        return
    raise SystemExit(f"fastsockjs_server: unknown --gc mode {mode!r}")


class GcStats:
    """Pause of every collection, per generation, timed from gc.callbacks."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._t0)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for gen, p in self.pauses.items():
            ms = sorted(x * 1e3 for x in p)
            out[f"gen{gen}"] = {
                "n": len(ms),
                "total_ms": round(sum(ms), 3),
                "max_ms": round(ms[-1], 3) if ms else 0.0,
                "over_0.5ms": sum(x > 0.5 for x in ms),
                "over_1ms": sum(x > 1.0 for x in ms),
            }
        out["threshold"] = gc.get_threshold()
        out["frozen"] = gc.get_freeze_count()
        return out


async def serve(
    port: int,
    gc_mode: str = "default",
    gc_stats: GcStats | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    listener = fastsockjs.Listener(ssl=tls)
    for server in make_servers():
        server.install_handlers(listener)
    await listener.listen("127.0.0.1", port, backlog=4096)
    apply_gc_mode(gc_mode)
    if gc_stats is not None:
        gc.callbacks.append(gc_stats)
    await ready_until_stopped(listener.port, frames.impl.IMPLEMENTATION)
    await listener.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--no-uvloop", action="store_true")
    p.add_argument("--cprofile", default=None, help="write a cProfile dump here on exit")
    p.add_argument(
        "--gc",
        default=os.environ.get("FASTSOCKJS_BENCH_GC", "default"),
        help="default | freeze | freeze-t<N> | off (tail-latency experiments)",
    )
    p.add_argument(
        "--gc-stats",
        action="store_true",
        default=os.environ.get("FASTSOCKJS_BENCH_GC_STATS") == "1",
        help="print GCSTATS {json} (collection pauses after READY) on stderr at exit",
    )
    p.add_argument("--ssl-certfile", default=None, help="serve TLS with this certificate")
    p.add_argument("--ssl-keyfile", default=None, help="the certificate's private key")
    args = p.parse_args(argv)
    tls = None
    if args.ssl_certfile:
        tls = fastsockjs.ssl_context(args.ssl_certfile, args.ssl_keyfile)
    stats = GcStats() if args.gc_stats else None
    loop = asyncio.new_event_loop() if args.no_uvloop else fastsockjs.new_event_loop()
    asyncio.set_event_loop(loop)
    profiler: Any = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        loop.run_until_complete(serve(args.port, args.gc, stats, tls))
    finally:
        if stats is not None:
            gc.callbacks.remove(stats)
            print("GCSTATS", json.dumps(stats.summary()), file=sys.stderr, flush=True)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        loop.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
