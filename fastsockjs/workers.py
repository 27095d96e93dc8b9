"""Several worker processes: worker ids and the supervisor (each worker runs
:func:`fastsockjs.runner.run`; ``fastsockjs.haproxy`` writes the proxy's
configuration).

Two layouts (``docs/scaling.md``):

* one port per worker (``--port P``: workers on P, P+1, ...) behind HAProxy,
  which hashes the ``/<prefix>/<server_id>/`` head of session URLs so that
  every request of a session reaches the worker that owns it;
* one shared port (``--reuse-port``, SO_REUSEPORT): the kernel spreads
  *connections*, so only WebSocket transports (one connection per session)
  may be enabled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastsockjs.server import Server

#: Set by the supervisor in each worker's environment (any string works).
ENV_WORKER_ID = "FASTSOCKJS_WORKER_ID"
ENV_WORKER_INDEX = "FASTSOCKJS_WORKER_INDEX"
_log = logging.getLogger("fastsockjs.workers")


# -- identity ---------------------------------------------------------------------------
def worker_id() -> str:
    """This process's worker id: ``$FASTSOCKJS_WORKER_ID`` (``w0``, ``w1``, ... under
    ``--workers``), else ``pid<pid>``."""
    return os.environ.get(ENV_WORKER_ID) or f"pid{os.getpid()}"


def worker_index() -> int | None:
    """0, 1, ... under ``--workers``; None otherwise."""
    value = os.environ.get(ENV_WORKER_INDEX)
    return int(value) if value and value.isdigit() else None


def reuse_port_problem(servers: Iterable[Server]) -> str | None:
    """Why these servers cannot share one port between processes (None: they can)."""
    from fastsockjs.options import TRANSPORTS
    from fastsockjs.transports import SINGLE_CONNECTION

    for server in servers:
        options = server.options
        polling = [t for t in TRANSPORTS if options.enabled(t) and t not in SINGLE_CONNECTION]
        if polling:
            where = options.prefix or "/"
            return (
                f"--reuse-port needs WebSocket-only servers, but {where} has "
                f"{', '.join(polling)} enabled. With SO_REUSEPORT the kernel picks a "
                "worker per TCP connection, and an HTTP-polling or streaming session "
                "spans many connections: its polling requests and sends would land on "
                "workers that do not own the session (404, or a second session). "
                "Use one port per worker behind HAProxy (--port P, see `fastsockjs "
                "haproxy-config`), or allow only WebSockets: --transports websocket,websocket-raw"
            )
    return None


# -- the supervisor -----------------------------------------------------------------------
class Supervisor:
    """Starts N worker processes (``python -m fastsockjs ...``), forwards SIGTERM /
    SIGINT to them for a graceful shutdown and exits once they all have.

    A worker that dies on its own is restarted (backoff 0.5 s doubling to 10 s);
    one that exits with an error status within ``startup_grace`` seconds of its
    first start (a bad option, a port in use) stops the whole group instead.
    """

    def __init__(
        self,
        worker_args: Callable[[int], list[str]],
        workers: int,
        *,
        shutdown_timeout: float = 5.0,
        startup_grace: float = 2.0,
        python: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.worker_args = worker_args
        self.count = workers
        self.shutdown_timeout = shutdown_timeout
        self.startup_grace = startup_grace
        self.python = python or sys.executable
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.started: list[float] = [0.0] * workers
        self.restarts: list[int] = [0] * workers
        self.next_start: list[float | None] = [None] * workers
        self._signal: int | None = None

    def _spawn(self, i: int) -> None:
        env = {**os.environ, ENV_WORKER_ID: f"w{i}", ENV_WORKER_INDEX: str(i)}
        cmd = [self.python, "-m", "fastsockjs", *self.worker_args(i)]
        self.procs[i] = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        self.started[i] = time.monotonic()
        self.next_start[i] = None
        _log.info("started worker w%d (pid %d)", i, self.procs[i].pid)  # type: ignore[union-attr]

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is None:
            self._signal = signum

    def _forward(self, sig: int) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # just exited
                    proc.send_signal(sig)

    def run(self) -> int:
        """Supervise until a signal (or a fatal worker failure); the exit status."""
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        status = 0
        try:
            for i in range(self.count):
                self._spawn(i)
            status = self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_leftovers()
        return status

    def _watch(self) -> int:
        while True:
            if self._signal is not None:
                sig = signal.SIGINT if self._signal == signal.SIGINT else signal.SIGTERM
                _log.info("got %s: stopping %d worker(s)", signal.Signals(sig).name, self.count)
                return self._stop(sig, 0)
            now = time.monotonic()
            for i, proc in enumerate(self.procs):
                if proc is None:
                    when = self.next_start[i]
                    if when is not None and now >= when:
                        self._spawn(i)
                    continue
                code = proc.poll()
                if code is None:
                    continue
                ran = now - self.started[i]
                self.procs[i] = None
                if self.restarts[i] == 0 and ran < self.startup_grace and code > 0:
                    _log.error(
                        "worker w%d exited with %s %.1f s after starting: stopping", i,
                        _exit_text(code), ran,
                    )
                    return self._stop(signal.SIGTERM, 1)
                delay = 0.5 if ran > 30 else min(10.0, 0.5 * 2 ** min(self.restarts[i], 5))
                self.restarts[i] += 1
                self.next_start[i] = now + delay
                _log.warning(
                    "worker w%d (pid %d) exited with %s; restarting in %.1f s",
                    i, proc.pid, _exit_text(code), delay,
                )
            time.sleep(0.05)

    def _stop(self, sig: int, status: int) -> int:
        self._forward(sig)
        deadline = time.monotonic() + self.shutdown_timeout + 5.0
        while time.monotonic() < deadline:
            if all(p is None or p.poll() is not None for p in self.procs):
                break
            time.sleep(0.05)
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            if proc.poll() is None:
                _log.warning("worker w%d (pid %d) did not stop: killing it", i, proc.pid)
                proc.kill()
                proc.wait(5)
                status = status or 1
            elif proc.returncode not in (0, -sig):
                status = status or 1
        _log.info("all workers stopped")
        return status

    def _kill_leftovers(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:  # pragma: no cover
            return f"signal {-code}"
    return f"status {code}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the worker gets SIGTERM if the supervisor dies without forwarding."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
