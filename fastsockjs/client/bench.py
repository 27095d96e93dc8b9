"""``fastsockjs bench URL``: load any SockJS echo service through fastsockjs.client.

N sessions over one transport for D seconds, either closed loop (each session
keeps ``--window`` messages in flight) or open loop (``--rate`` messages per
second in all, sent on schedule whatever the replies do, so a slow server
cannot hide its latency: it is measured from the scheduled time). Each message
carries its send time; the echo brings it back. Sessions are spread over
several processes when one core would not drive them (``--processes``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fastsockjs.client.connection import connect
from fastsockjs.client.errors import SockJSError
from fastsockjs.client.protocol import TRANSPORTS

_STEP = math.log(1.01)  # histogram buckets 1% wide


@dataclass
class Plan:
    url: str
    transport: str = "websocket"
    sessions: int = 10
    duration: float = 10.0
    warmup: float = 0.0  # seconds of load before the measured window
    window: int = 1
    rate: float | None = None  # messages/s in all: open loop
    size: int = 32
    processes: int = 1
    connect_timeout: float = 10.0


@dataclass
class Result:
    sent: int = 0
    received: int = 0
    errors: int = 0
    sessions: int = 0
    seconds: float = 0.0
    buckets: dict[int, int] = field(default_factory=dict)  # bucket -> count (microseconds)

    def record(self, latency_ns: int) -> None:
        us = max(latency_ns / 1000.0, 1.0)
        bucket = int(math.log(us) / _STEP)
        self.buckets[bucket] = self.buckets.get(bucket, 0) + 1

    def merge(self, other: Result) -> None:
        self.sent += other.sent
        self.received += other.received
        self.errors += other.errors
        self.sessions += other.sessions
        self.seconds = max(self.seconds, other.seconds)
        for bucket, count in other.buckets.items():
            self.buckets[bucket] = self.buckets.get(bucket, 0) + count

    def percentile(self, q: float) -> float:
        """Latency (ms) under which ``q`` percent of the messages came back."""
        total = sum(self.buckets.values())
        if not total:
            return math.nan
        wanted = total * q / 100.0
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= wanted:
                return math.exp((bucket + 0.5) * _STEP) / 1000.0
        return math.nan

    def summary(self, plan: Plan) -> dict[str, Any]:
        return {
            "url": plan.url,
            "transport": plan.transport,
            "sessions": plan.sessions,
            "sessions_opened": self.sessions,
            "duration": plan.duration,
            "warmup": plan.warmup,
            "mode": "open" if plan.rate else "closed",
            "window": None if plan.rate else plan.window,
            "rate": plan.rate,
            "size": plan.size,
            "processes": plan.processes,
            "sent": self.sent,
            "received": self.received,
            "errors": self.errors,
            "msgs_per_s": self.received / self.seconds if self.seconds else 0.0,
            "latency_ms": {
                "p50": self.percentile(50),
                "p99": self.percentile(99),
                "p99.9": self.percentile(99.9),
            },
        }


def _payload(sent_ns: int, size: int) -> str:
    stamp = str(sent_ns)
    return stamp + " " + "x" * max(0, size - len(stamp) - 1)


async def run_sessions(
    plan: Plan, count: int, progress: Callable[[int, int], None] | None = None
) -> Result:
    """Open ``count`` sessions, load them for ``plan.duration`` seconds."""
    result = Result()
    gate = asyncio.Semaphore(64)  # not a connect storm

    async def opened() -> Any:
        async with gate:
            try:
                return await connect(
                    plan.url, [plan.transport], timeout=plan.connect_timeout, max_queue=1 << 16
                )
            except (SockJSError, OSError):
                result.errors += 1
                return None

    conns = [c for c in await asyncio.gather(*(opened() for _ in range(count))) if c is not None]
    result.sessions = len(conns)
    if not conns:
        return result
    per_session_rate = plan.rate / (plan.sessions or 1) if plan.rate else None
    started = time.monotonic_ns()
    measured = started + int(plan.warmup * 1e9)
    deadline = measured + int(plan.duration * 1e9)
    last = [0, 0]

    async def receive(conn: Any) -> None:
        while True:
            try:
                left = (deadline - time.monotonic_ns()) / 1e9
                message = await conn.recv(timeout=max(0.1, left + 2))
            except (SockJSError, TimeoutError):
                return
            now = time.monotonic_ns()
            with contextlib.suppress(ValueError):
                stamp = int(message.split(" ", 1)[0])
                # Only messages sent inside the measured window count.
                if stamp >= measured:
                    result.record(now - stamp)
                    result.received += 1
            if per_session_rate is None and now < deadline:
                await send(conn, now)

    async def send(conn: Any, stamp: int) -> None:
        try:
            await conn.send(_payload(stamp, plan.size))
            if stamp >= measured:
                result.sent += 1
        except SockJSError:
            result.errors += 1

    async def scheduled(conn: Any, offset: float) -> None:
        assert per_session_rate is not None
        interval = 1e9 / per_session_rate
        k = 0
        while True:
            due = started + int((k + offset) * interval)
            if due >= deadline:
                return
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            # Latency counts from when it was due, not from when we got round to it.
            await send(conn, due)
            k += 1

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            if progress is not None:
                progress(result.sent - last[0], result.received - last[1])
            last[:] = [result.sent, result.received]

    tasks = [asyncio.ensure_future(receive(c)) for c in conns]
    if per_session_rate is None:
        for conn in conns:
            for _ in range(plan.window):
                await send(conn, time.monotonic_ns())
    else:
        tasks += [
            asyncio.ensure_future(scheduled(c, i / len(conns))) for i, c in enumerate(conns)
        ]
    reporter = asyncio.ensure_future(report())
    await asyncio.sleep(plan.warmup + plan.duration)
    result.seconds = (time.monotonic_ns() - measured) / 1e9
    # Replies still in flight get two seconds to come back; they are not counted in msgs/s time.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2.5)
    reporter.cancel()
    if progress is not None:
        progress(result.sent - last[0], result.received - last[1])
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(c.close(timeout=1.0) for c in conns), return_exceptions=True)
    return result


def _worker(plan: Plan, count: int, queue: Any) -> None:
    def progress(sent: int, received: int) -> None:
        queue.put(("progress", sent, received))

    result = asyncio.run(run_sessions(plan, count, progress))
    queue.put(("result", asdict(result)))


def auto_processes(sessions: int) -> int:
    """One process drives about 100 sessions; use the cores beyond that."""
    return max(1, min(os.cpu_count() or 1, math.ceil(sessions / 100)))


def run(plan: Plan, progress_out: Any = sys.stderr) -> Result:
    """Run ``plan`` across ``plan.processes`` processes; progress lines on ``progress_out``."""
    counts = [plan.sessions // plan.processes] * plan.processes
    for i in range(plan.sessions % plan.processes):
        counts[i] += 1
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(plan, n, queue), daemon=True) for n in counts if n]
    for proc in procs:
        proc.start()
    total = Result()
    results = 0
    second: dict[str, int] = {"sent": 0, "received": 0}
    started = time.monotonic()
    last_line = started
    wait_until = started + plan.warmup + plan.duration + plan.connect_timeout + 30
    try:
        while results < len(procs):
            try:
                item = queue.get(timeout=0.5)
            except Exception:
                item = None
            if item is not None and item[0] == "result":
                data = item[1]
                data["buckets"] = {int(k): v for k, v in data["buckets"].items()}
                total.merge(Result(**data))
                results += 1
            elif item is not None:
                second["sent"] += item[1]
                second["received"] += item[2]
            now = time.monotonic()
            if now - last_line >= 1.0 and progress_out is not None:
                span = now - last_line
                progress_out.write(
                    f"\r[{now - started:5.1f}s] sent {second['sent'] / span:8.0f}/s  "
                    f"received {second['received'] / span:8.0f}/s   "
                )
                progress_out.flush()
                second = {"sent": 0, "received": 0}
                last_line = now
            if now > wait_until or (not any(p.is_alive() for p in procs) and queue.empty()):
                if results < len(procs):
                    total.errors += len(procs) - results
                break
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        if progress_out is not None:
            progress_out.write("\n")
    return total


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="a SockJS echo service, e.g. http://127.0.0.1:8081/echo")
    p.add_argument("--transport", choices=TRANSPORTS, default="websocket")
    p.add_argument("--sessions", "-n", type=int, default=10, help="sessions (default 10)")
    p.add_argument(
        "--duration", "-d", type=float, default=10.0, help="measured seconds (default 10)"
    )
    p.add_argument(
        "--warmup", type=float, default=1.0,
        help="seconds of load before the measurement starts (default 1)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--window", type=int, default=1,
        help="closed loop: messages in flight per session (default 1)",
    )
    group.add_argument(
        "--rate", type=float, default=None, help="open loop: messages per second, all sessions"
    )
    p.add_argument("--size", type=int, default=32, help="message size in characters (default 32)")
    p.add_argument(
        "--processes", default="auto",
        help="worker processes (default auto: one per 100 sessions, up to the CPU count)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def main(args: argparse.Namespace) -> int:
    processes = (
        auto_processes(args.sessions) if args.processes == "auto" else int(args.processes)
    )
    if (
        args.sessions < 1 or processes < 1 or args.window < 1 or args.duration <= 0
        or args.warmup < 0
    ):
        raise SystemExit("fastsockjs bench: sessions, processes, window and duration must be > 0")
    plan = Plan(
        url=args.url, transport=args.transport, sessions=args.sessions,
        duration=args.duration, warmup=args.warmup, window=args.window, rate=args.rate,
        size=args.size,
        processes=min(processes, args.sessions),
    )
    result = run(plan)
    summary = result.summary(plan)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        lat = summary["latency_ms"]
        mode = f"rate {plan.rate:g}/s" if plan.rate else f"window {plan.window}"
        sys.stdout.write(
            f"{plan.url} {plan.transport}: {result.sessions}/{plan.sessions} sessions, "
            f"{mode}, {plan.duration:g} s, {plan.processes} process(es)\n"
            f"  {summary['msgs_per_s']:.0f} msgs/s  (sent {result.sent}, received "
            f"{result.received}, errors {result.errors})\n"
            f"  latency p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms  "
            f"p99.9 {lat['p99.9']:.3f} ms\n"
        )
    return 0 if result.sessions == plan.sessions and result.errors == 0 else 1


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fastsockjs bench")
    add_arguments(p)
    return p.parse_args(argv)
