"""``python -m bench.load.icount``: user-space instructions per xhr-polling request.

A server's whole process (event loop, parser, Python, libc: everything but the
kernel) runs under valgrind's callgrind, and a driver in this process sends it
xhr poll + xhr_send pairs over 10 sessions, one pair at a time. The count is
taken at two lengths of the same run shape, so start-up and shutdown cancel:
``(I(pairs) - I(warmup)) / ((pairs - warmup) * 2)``. Unlike CPU time it does not
move with the machine's load, so a before/after of a change to the request path
reads true on a shared machine (``--baseline DIR``: another checkout, its
extension built in place). ``floor`` (bench/load/floor_server.py) is what the
event loop and the socket calls cost per request, below any real server.

Needs ``valgrind`` (``apt install valgrind``). About a minute per server.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load.prepare import REPO, log

SESSIONS = 10
_MESSAGE = b'["' + b"a" * 32 + b'"]'
_SERVERS = {
    "fastsockjs": ["-m", "bench.load.fastsockjs_server"],
    "floor": ["-m", "bench.load.floor_server"],
}


def _request(port: int, sid: bytes, what: bytes, body: bytes = b"") -> bytes:
    return (
        b"POST /echo/000/%s/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %d\r\n\r\n"
        % (sid, what, port, len(body))
    ) + body


def _read_response(sock: socket.socket, deadline: float) -> None:
    """One response (Content-Length or chunked), or fail by ``deadline``."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            if b"transfer-encoding: chunked" in head:
                if buf.find(b"\r\n0\r\n\r\n", end) >= 0 or buf.endswith(b"0\r\n\r\n"):
                    return
            else:
                m = re.search(rb"content-length: (\d+)", head)
                if len(buf) >= end + 4 + (int(m.group(1)) if m else 0):
                    return
        if time.monotonic() > deadline:
            raise TimeoutError("no answer from the server")
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        buf += data


def drive(port: int, pairs: int, timeout: float = 600.0) -> None:
    """``pairs`` poll + send pairs (each answered before the next) over SESSIONS."""
    deadline = time.monotonic() + timeout
    sessions = []
    try:
        for i in range(SESSIONS):
            sid = b"s%d" % i
            poll = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            send = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sessions.append((sid, poll, send))
            poll.sendall(_request(port, sid, b"xhr"))  # the open frame
            _read_response(poll, deadline)
        for n in range(pairs):
            sid, poll, send = sessions[n % SESSIONS]
            poll.sendall(_request(port, sid, b"xhr"))
            send.sendall(_request(port, sid, b"xhr_send", _MESSAGE))
            _read_response(send, deadline)
            _read_response(poll, deadline)
    finally:
        for _, poll, send in sessions:
            poll.close()
            send.close()


def instructions(argv: list[str], cwd: Path, pairs: int) -> int:
    """Instructions callgrind counted in a server that answered ``pairs`` pairs."""
    env = dict(os.environ, PYTHONPATH=str(cwd), FASTSOCKJS_PURE_PYTHON="0")
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()  # start-up under valgrind: seconds
            if not line.startswith("READY"):
                raise RuntimeError(f"server did not start: {line!r}")
            drive(int(line.split()[1]), pairs)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.seek(0)
        text = err.read().decode(errors="replace")
    m = re.search(r"Collected : (\d+)", text)
    if m is None:
        raise RuntimeError("callgrind printed no count:\n" + text[-2000:])
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load.icount", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="fastsockjs,floor",
                   help="comma-separated: fastsockjs, floor (default both)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another checkout whose fastsockjs server is counted too")
    p.add_argument("--pairs", type=int, default=2200)
    p.add_argument("--warmup", type=int, default=200)
    args = p.parse_args(argv)
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
        raise SystemExit("bench.load.icount: valgrind is not installed (apt install valgrind)")
    runs: list[tuple[str, list[str], Path]] = []
    for name in [n.strip() for n in args.server.split(",") if n.strip()]:
        if name not in _SERVERS:
            raise SystemExit(f"bench.load.icount: unknown server {name!r}")
        runs.append((name, [sys.executable, *_SERVERS[name]], REPO))
    if args.baseline is not None:
        runs.append(("baseline", [sys.executable, *_SERVERS["fastsockjs"]],
                     args.baseline.resolve()))
    for name, server_argv, cwd in runs:
        short = instructions(server_argv, cwd, args.warmup)
        long = instructions(server_argv, cwd, args.pairs)
        per = (long - short) / ((args.pairs - args.warmup) * 2)
        log(f"{name:<12} {per:>10,.0f} instructions per request (user space, whole process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
