"""Several worker processes: worker ids, the supervisor, serving one worker,
and the HAProxy configuration that keeps each SockJS session on its worker.

Two layouts (``docs/scaling.md``):

* one port per worker (``--port P``: workers on P, P+1, ...) behind HAProxy,
  which hashes the ``/<prefix>/<server_id>/`` head of session URLs so that
  every request of a session reaches the worker that owns it;
* one shared port (``--reuse-port``, SO_REUSEPORT): the kernel spreads
  *connections*, so only WebSocket transports (one connection per session)
  may be enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastsockjs.aio.listener import Fallback
    from fastsockjs.broker import Broker
    from fastsockjs.server import Server

#: Set by the supervisor in each worker's environment (any string works).
ENV_WORKER_ID = "FASTSOCKJS_WORKER_ID"
ENV_WORKER_INDEX = "FASTSOCKJS_WORKER_INDEX"
#: Transports that keep a whole session on one TCP connection.
WEBSOCKET_TRANSPORTS = frozenset({"websocket", "websocket-raw"})

LOG_FORMAT = "%(asctime)s [%(worker)s] %(name)s %(levelname)s %(message)s"

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


class WorkerLogFilter(logging.Filter):
    """Gives every record a ``worker`` attribute (for ``%(worker)s``)."""

    def __init__(self, label: str | None = None) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker"):
            record.worker = self.label or worker_id()
        return True


def configure_logging(level: str = "info", label: str | None = None) -> None:
    """Root logging to stderr in :data:`LOG_FORMAT` (the worker id on every line)."""
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO), format=LOG_FORMAT
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, WorkerLogFilter) for f in handler.filters):
            handler.addFilter(WorkerLogFilter(label))


# -- one worker -------------------------------------------------------------------------
def run_worker(
    *servers: Server,
    host: str = "127.0.0.1",
    port: int = 8081,
    fallback: Fallback | None = None,
    use_uvloop: bool = True,
    reuse_port: bool = False,
    broker: Broker | None = None,
    shutdown_timeout: float = 5.0,
    on_listening: Callable[[int], None] | None = None,
    metrics_path: str | None = None,
    **limits: Any,
) -> None:
    """Like :func:`fastsockjs.run`, plus SO_REUSEPORT and a broker's lifecycle:
    start the broker, serve until SIGINT / SIGTERM, then ``Listener.shutdown``
    (every session gets ``c[1001,"Server shutting down"]``) and close the broker."""
    from fastsockjs.server import new_event_loop, serve

    loop = new_event_loop() if use_uvloop else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    log = logging.getLogger("fastsockjs")

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if broker is not None:
            await broker.start()
        listener = await serve(
            *servers, host=host, port=port, fallback=fallback, reuse_port=reuse_port,
            metrics_path=metrics_path, **limits,
        )
        log.info(
            "listening on http://%s:%d (worker %s, pid %d%s)", host, listener.port,
            worker_id(), os.getpid(), ", SO_REUSEPORT" if reuse_port else "",
        )
        if on_listening is not None:
            on_listening(listener.port)
        await stop.wait()
        log.info("shutting down")
        await listener.shutdown(shutdown_timeout)
        if broker is not None:
            await broker.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def reuse_port_problem(servers: Iterable[Server]) -> str | None:
    """Why these servers cannot share one port between processes (None: they can)."""
    from fastsockjs.options import TRANSPORTS

    for server in servers:
        options = server.options
        polling = [t for t in TRANSPORTS if options.enabled(t) and t not in WEBSOCKET_TRANSPORTS]
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


# -- HAProxy ----------------------------------------------------------------------------
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")


def _prefix_regex(prefix: str) -> str:
    segments = [s for s in prefix.split("/") if s]
    for seg in segments:
        if not _SEGMENT_RE.fullmatch(seg):
            raise ValueError(
                f"haproxy-config supports prefixes made of letters, digits and . _ ~ - "
                f"only, not {prefix!r}"
            )
    return "".join("/" + seg.replace(".", "[.]") for seg in segments)


def haproxy_config(
    workers: int,
    port: int,
    listen_port: int,
    prefixes: Sequence[str] = ("/chat",),
    host: str = "127.0.0.1",
    listen_host: str = "127.0.0.1",
    check_interval: str = "500ms",
    heartbeat_delay: float = 25.0,
) -> str:
    """An HAProxy (>= 2.2) configuration for ``workers`` processes on ports
    ``port``, ``port + 1``, ...: session requests are hashed on
    ``<prefix>/<server_id>`` (consistent hashing), everything else is balanced
    by least connections; health checks on ``<prefix>/info``. The client and
    server timeouts stay above twice the servers' ``heartbeat_delay``."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if not 0 < heartbeat_delay <= 3600:
        raise ValueError("heartbeat_delay is seconds, above 0 and at most an hour")
    if not prefixes:
        raise ValueError("at least one prefix is needed")
    for p in (port, port + workers - 1, listen_port):
        if not 0 < p < 65536:
            raise ValueError(f"port {p} is out of range")
    for prefix in prefixes:
        if prefix != "" and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"a prefix is '' or like '/chat' (no trailing slash), not {prefix!r}")
    by_depth: dict[int, list[str]] = {}
    for prefix in prefixes:
        by_depth.setdefault(len([s for s in prefix.split("/") if s]), []).append(prefix)
    args = f"--workers {workers} --port {port} --listen-port {listen_port}" + "".join(
        f" --prefix {p}" for p in prefixes
    )
    if host != "127.0.0.1":
        args += f" --host {host}"
    if listen_host != "127.0.0.1":
        args += f" --listen-host {listen_host}"
    if heartbeat_delay != 25.0:
        args += f" --heartbeat-delay {heartbeat_delay:g}"
    # An idle stream or long poll carries a heartbeat every heartbeat_delay seconds.
    idle = max(60, math.ceil(2 * heartbeat_delay) + 10)
    servers = [(f"w{i}", f"{host}:{port + i}") for i in range(workers)]
    first = prefixes[0]
    lines = [
        "# HAProxy in front of fastsockjs workers, one port per worker (docs/scaling.md).",
        f"# Generated by: fastsockjs haproxy-config {args}",
        "#",
        "# Every request of a SockJS session has the path <prefix>/<server_id>/<session_id>/...",
        "# (xhr, xhr_send, xhr_streaming, eventsource, htmlfile, jsonp, jsonp_send, websocket).",
        "# Those are hashed on <prefix>/<server_id> (`balance uri depth N`: N path segments)",
        "# with consistent hashing, so all of them reach the worker that owns the session, and",
        "# a worker going down moves only its own sessions; a stick table keeps each session",
        "# where it started when a worker comes back. Never add hash-balance-factor: it would",
        "# move sessions between live workers. Other requests (/info, iframe, the raw",
        "# /websocket endpoint, pages) may go anywhere: least connections.",
        "",
        "global",
        "    # Each connection needs two file descriptors: raise `ulimit -n` with maxconn.",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    option dontlognull",
        "    timeout connect 5s",
        f"    # Above the {heartbeat_delay:g} s SockJS heartbeat: idle streams and long polls"
        " stay open.",
        f"    timeout client {idle}s",
        f"    timeout server {idle}s",
        "    # WebSockets, once upgraded.",
        "    timeout tunnel 1h",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    # Pass each SockJS frame on at once (no MSG_MORE coalescing: up to 200 ms a frame).",
        "    option http-no-delay",
        "    # A connection refused by a dead worker is retried on a live one.",
        "    retries 2",
        "    option redispatch",
        "",
        "frontend fastsockjs",
        f"    bind {listen_host}:{listen_port}",
    ]
    names = {}
    # Deeper prefixes first: /a/b/<server>/<session>/ also looks like a session of /a.
    for depth, group in sorted(by_depth.items(), reverse=True):
        name = "fastsockjs_sessions" if len(by_depth) == 1 else f"fastsockjs_sessions_{depth}"
        names[depth] = name
        alternatives = "|".join(_prefix_regex(p) for p in group)
        head = f"({alternatives})" if len(group) > 1 else alternatives
        lines.append(f"    acl {name} path_reg ^{head}/[^/.]+/[^/.]+/")
        lines.append(f"    use_backend {name} if {name}")
    lines += ["    default_backend fastsockjs_any", ""]
    check_backend = names[min(by_depth)]
    for depth, name in sorted(names.items()):
        lines += [
            f"backend {name}",
            f"    balance uri depth {depth + 1}",
            "    hash-type consistent",
            "    # ... and each session stays where it started while the set of live workers",
            "    # changes (a worker coming back must not take over sessions that failed over):",
            "    # one entry per session, keyed <server_id>/<session_id>; a missing or expired",
            "    # entry falls back to the hash above.",
            "    stick-table type string len 96 size 200k expire 30m",
            f"    stick on path,field({depth + 2},/,2)",
        ]
        if name == check_backend:
            lines += [
                "    option httpchk",
                f"    http-check send meth GET uri {first}/info ver HTTP/1.1 hdr Host localhost",
                "    http-check expect status 200",
                f"    default-server check inter {check_interval} fall 1 rise 2",
            ]
            lines += [f"    server {n} {addr}" for n, addr in servers]
        else:
            lines += [f"    server {n} {addr} track {check_backend}/{n}" for n, addr in servers]
        lines.append("")
    lines += ["backend fastsockjs_any", "    balance leastconn"]
    lines += [f"    server {n} {addr} track {check_backend}/{n}" for n, addr in servers]
    return "\n".join(lines) + "\n"
