"""Starting servers, running the load generator against them, in interleaved rounds."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load.prepare import _USABLE, LOADGEN, REPO, log
from bench.load.scenarios import Scenario, ServerSpec
from tests.helpers import TlsFiles as Certificates

#: A run whose server waited for its CPU (run-queue wait from /proc/PID/schedstat: other
#: processes on a shared machine) longer than this share of the window is run again.
CONTENDED = 0.05


def cores() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, generator cores): one core each when there are two or more."""
    if len(_USABLE) < 2:
        return None, None
    return {_USABLE[0]}, {_USABLE[1]}


def _pin(cpus: set[int] | None) -> Any:
    if cpus is None:
        return None

    def preexec() -> None:
        os.sched_setaffinity(0, cpus)

    return preexec


class TlsFiles(Certificates):
    """The tests' throwaway CA and certificate for 127.0.0.1 (trustme, PEM files in
    ``directory``), as the TLS scenarios give them to the servers and the generator."""

    def server_args(self) -> list[str]:
        return ["--ssl-certfile", str(self.certfile), "--ssl-keyfile", str(self.keyfile)]

    def loadgen_args(self) -> list[str]:
        return ["--tls", "1", "--tls-ca", str(self.ca)]


class ServerProcess:
    """One fresh server process, pinned, ready when it printed ``READY <port> <impl>``."""

    def __init__(
        self, spec: ServerSpec, cpus: set[int] | None, extra_args: list[str] | None = None
    ):
        self.spec = spec
        self.cpus = cpus
        env = os.environ.copy()
        env.update(spec.env)
        root = spec.source or REPO
        env["PYTHONPATH"] = str(root) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        self.errfile = tempfile.TemporaryFile()
        self.stderr_text = ""
        self.proc = subprocess.Popen(
            spec.argv + (extra_args or []),
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.errfile,
            stdin=subprocess.DEVNULL,
            preexec_fn=_pin(cpus),
        )
        self.pid = self.proc.pid
        self.port, self.impl = self._wait_ready(20.0)

    def _wait_ready(self, timeout: float) -> tuple[int, str]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.spec.name} did not start: {self.stderr_tail()}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                data += chunk
        words = data.split(b"\n", 1)[0].decode().split()
        if len(words) < 2 or words[0] != "READY":
            self.stop()
            raise RuntimeError(f"{self.spec.name}: unexpected first line {data!r}")
        return int(words[1]), words[2] if len(words) > 2 else "?"

    def stderr_tail(self, n: int = 1500) -> str:
        self.errfile.seek(0)
        return self.errfile.read().decode("utf-8", "replace")[-n:]

    def stop(self) -> None:
        """Stop the server; what it wrote on stderr stays in ``self.stderr_text``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not self.errfile.closed:
            self.stderr_text = self.stderr_tail(1 << 16)
            self.errfile.close()


@dataclass
class Timing:
    warmup: float
    duration: float


def run_loadgen(
    scenario: Scenario,
    server: ServerProcess,
    timing: Timing,
    cpus: set[int] | None,
    units: int | None = None,
    tls: TlsFiles | None = None,
) -> dict[str, Any]:
    if scenario.tls and tls is None:
        raise ValueError(f"{scenario.name} runs over TLS: give it TlsFiles")
    args = [
        str(LOADGEN),
        "--port",
        str(server.port),
        "--pid",
        str(server.pid),
        *(["--server-core", str(min(server.cpus))] if server.cpus else []),
        *(["--gen-core", str(min(cpus))] if cpus else []),
        "--raw",
        "1" if server.spec.raw else "0",
        "--prefix",
        "/" if server.spec.raw else scenario.prefix,
        "--warmup",
        str(timing.warmup),
        "--duration",
        str(timing.duration),
        "--timeout",
        str(scenario.timeout),
        *scenario.loadgen_args(units),
        *(tls.loadgen_args() if scenario.tls and tls else []),
    ]
    limit = scenario.timeout + timing.warmup + timing.duration + 30
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=limit, preexec_fn=_pin(cpus), cwd=REPO
    )
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {"ok": False, "failure": f"no result (exit {proc.returncode})"}
    result["stderr"] = [line for line in proc.stderr.splitlines() if line][-8:]
    return result


def contention(result: dict[str, Any]) -> float | None:
    """Share of the window the server spent waiting for its CPU (None: not measured)."""
    wait, window = result.get("server_runq_wait_s", -1), result.get("window_s")
    if not result.get("ok") or wait is None or wait < 0 or not window:
        return None
    return float(wait) / float(window)


def one_run(
    scenario: Scenario,
    spec: ServerSpec,
    timing: Timing,
    units: int | None = None,
    tls: TlsFiles | None = None,
) -> dict[str, Any]:
    server_cpus, gen_cpus = cores()
    t0 = time.monotonic()
    try:
        server = ServerProcess(
            spec, server_cpus, tls.server_args() if scenario.tls and tls else None
        )
    except RuntimeError as exc:
        return {"ok": False, "failure": str(exc), "wall_s": time.monotonic() - t0}
    try:
        if spec.expect and server.impl != spec.expect:
            log(f"  ! {spec.name} runs the {server.impl} kernels, not {spec.expect}")
        result = run_loadgen(scenario, server, timing, gen_cpus, units, tls)
        result["server_impl"] = server.impl
        if not result.get("ok"):
            result["server_stderr"] = server.stderr_tail()
    except subprocess.TimeoutExpired:
        result = {"ok": False, "failure": "load generator timed out"}
    finally:
        server.stop()
    result["wall_s"] = round(time.monotonic() - t0, 3)
    return result


def profile_run(
    scenario: Scenario,
    spec: ServerSpec,
    timing: Timing,
    tool: str,
    out_dir: Path,
    native: bool = False,
    tls: TlsFiles | None = None,
) -> dict[str, Any]:
    """One run with the server profiled: cProfile inside it, or py-spy (``native``: with
    the C frames) or ``perf record -g`` sampling it from outside. The samplers start
    before the load and stop after it (warm-up and connect included)."""
    import shutil

    server_cpus, gen_cpus = cores()
    out_dir.mkdir(parents=True, exist_ok=True)
    tls_args = tls.server_args() if scenario.tls and tls else []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if tool == "cprofile":
        prof = out_dir / f"profile-{scenario.name}-{stamp}.prof"
        server = ServerProcess(spec, server_cpus, ["--cprofile", str(prof), *tls_args])
        try:
            result = run_loadgen(scenario, server, timing, gen_cpus, tls=tls)
        finally:
            server.stop()
        return {"result": result, "file": prof}
    if tool == "perf":
        perf = shutil.which("perf")
        if not perf:
            raise SystemExit("bench.load: perf is not installed (apt-get install linux-perf)")
        data = out_dir / f"perf-{scenario.name}-{stamp}.data"
        return _sampled(
            lambda pid: [perf, "record", "-F", "1999", "-g", "-p", str(pid), "-o", str(data)],
            data, 30, spec, scenario, timing, server_cpus, gen_cpus, tls,
        )
    # py-spy installs its binary next to this interpreter (a venv not on PATH)
    pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not pyspy:
        raise SystemExit("bench.load: py-spy is not installed (pip install py-spy)")
    raw = out_dir / f"profile-{scenario.name}-{stamp}.txt"
    seconds = str(int(timing.warmup + timing.duration + 2))
    return _sampled(
        lambda pid: [pyspy, "record", "-p", str(pid), "-r", "1000" if native else "250",
                     "-f", "raw", "-o", str(raw), *(["--native"] if native else []),
                     "-d", seconds],
        raw, 15, spec, scenario, timing, server_cpus, gen_cpus, tls,
    )


def _sampled(
    command: Callable[[int], list[str]], out: Path, stop_wait: float, spec: ServerSpec,
    scenario: Scenario, timing: Timing, server_cpus: set[int] | None, gen_cpus: set[int] | None,
    tls: TlsFiles | None = None,
) -> dict[str, Any]:
    """One run with an outside sampler (``command(server_pid)``) on the generator's
    cores, started before the load and stopped (SIGINT) after it."""
    server = ServerProcess(spec, server_cpus, tls.server_args() if scenario.tls and tls else None)
    try:
        sampler = subprocess.Popen(
            command(server.pid),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_pin(gen_cpus),
        )
        time.sleep(0.5)
        result = run_loadgen(scenario, server, timing, gen_cpus, tls=tls)
        sampler.send_signal(signal.SIGINT)
        try:
            sampler.wait(stop_wait)
        except subprocess.TimeoutExpired:
            sampler.kill()
    finally:
        server.stop()
    return {"result": result, "file": out}
