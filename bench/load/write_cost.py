"""What one small ``send()`` on loopback costs the sender, with the reader asleep
and with the reader busy: the floor under every write-bound scenario.

Usage: ``python -m bench.load.write_cost [--sends 20000] [--gap-us 100]``

The sender is pinned to the first usable core and the reader to the second, as
the load benchmark pins server and generator. On loopback the kernel runs the
receiver's TCP processing, and the wake-up of a reader sleeping in ``recv``,
inside the sender's ``send()``; on a virtual machine that wake-up is an
inter-processor interrupt, and it is most of the cost. Every server pays it
once per write, which is why one-write-per-message scenarios (``echo-1``,
``broadcast-*`` with one message in flight, ``xhr-polling``) show ratios near 1.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time


def _reader(port: int, core: int, busy: bool, seconds: float) -> None:
    os.sched_setaffinity(0, {core})
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setblocking(not busy)  # busy: spin on a non-blocking socket, never sleep
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not conn.recv(65536):
                break
        except BlockingIOError:
            pass
    os._exit(0)


def measure(busy: bool, sends: int, gap_us: int, cores: list[int]) -> tuple[float, float]:
    """(median, p90) microseconds per 40-byte ``send()``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seconds = 2.0 + sends * (gap_us + 20) / 1e6
    pid = os.fork()
    if pid == 0:
        _reader(port, cores[1], busy, seconds)
    os.sched_setaffinity(0, {cores[0]})
    sock, _ = listener.accept()
    listener.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * 40
    costs = []
    for _ in range(sends):
        t0 = time.perf_counter_ns()
        sock.send(message)
        costs.append(time.perf_counter_ns() - t0)
        # A pause between sends, so that a blocking reader has gone back to sleep.
        until = time.perf_counter_ns() + gap_us * 1000
        while time.perf_counter_ns() < until:
            pass
    sock.close()
    os.waitpid(pid, 0)
    costs.sort()
    return statistics.median(costs) / 1000, costs[int(len(costs) * 0.9)] / 1000


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sends", type=int, default=20000)
    p.add_argument("--gap-us", type=int, default=100)
    args = p.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("write_cost: needs two usable cores")
    for busy in (False, True):
        median, p90 = measure(busy, args.sends, args.gap_us, cores)
        state = "busy (spinning)" if busy else "asleep in recv()"
        print(f"reader {state:17}  send(): median {median:5.1f} us, p90 {p90:5.1f} us")


if __name__ == "__main__":
    main()
