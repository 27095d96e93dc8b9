"""The servers under test, the scenarios, and the metrics derived from a run."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load.prepare import NODE_DIR

Result = dict[str, Any]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    raw: bool = False  # a plain WebSocket echo server (no SockJS framing)
    expect: str | None = None  # implementation the READY line must report
    default: bool = True  # False: runs only when named with --server
    only: tuple[str, ...] = ()  # the scenarios it can run, when not all of them
    # Another checkout to run the server from (its fastsockjs and bench.load), for
    # before/after comparisons in the same rounds; None: this one.
    source: Path | None = None
    tls: bool = False  # serves https/wss when given --ssl-certfile/--ssl-keyfile


SERVERS: list[ServerSpec] = [
    ServerSpec(
        "fastsockjs",
        [sys.executable, "-m", "bench.load.fastsockjs_server"],
        {"FASTSOCKJS_PURE_PYTHON": "0"},
        expect="cython",
        tls=True,
    ),
    ServerSpec(
        "fastsockjs-purepy",
        [sys.executable, "-m", "bench.load.fastsockjs_server"],
        {"FASTSOCKJS_PURE_PYTHON": "1"},
        expect="python",
        tls=True,
    ),
    # with a certificate: https.createServer instead of http.createServer
    ServerSpec("sockjs-node", ["node", str(NODE_DIR / "server.js"), "0"], tls=True),
    ServerSpec("picows", [sys.executable, "-m", "bench.load.picows_server"], raw=True),
    # The least Python that answers xhr-polling on uvloop: what the loop and the
    # kernel cost per request, below any real server (see floor_server.py).
    ServerSpec(
        "floor",
        [sys.executable, "-m", "bench.load.floor_server"],
        default=False,
        only=("xhr-polling",),
    ),
    # The ASGI host: SockJSApp under uvicorn (httptools, uvloop), one per WebSocket
    # implementation of uvicorn's; compared with the native fastsockjs.
    *(
        ServerSpec(
            "fastsockjs-asgi" + suffix,
            [sys.executable, "-m", "bench.load.asgi_server", "--ws", ws],
            {"FASTSOCKJS_PURE_PYTHON": "0"},
            expect="cython",
            default=False,
        )
        for suffix, ws in (
            ("", "websockets-sansio"),
            ("-websockets", "websockets"),
            ("-wsproto", "wsproto"),
        )
    ),
]
SERVER_NAMES = [s.name for s in SERVERS]
REFERENCES = ("sockjs-node", "picows", "fastsockjs")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    get: Callable[[Result], float | None]
    fmt: str = "{:,.0f}"
    higher_is_better: bool = True
    in_table: bool = True  # False: in the JSON summary only


def _lat(q: str) -> Callable[[Result], float | None]:
    def get(r: Result) -> float | None:
        v = r.get("lat_ms", {}).get(q)
        return None if v is None or v < 0 else float(v)

    return get


def _per_cpu(count: Callable[[Result], float]) -> Callable[[Result], float | None]:
    def get(r: Result) -> float | None:
        cpu = r.get("server_cpu_s") or 0
        return count(r) / cpu if cpu > 0 else None

    return get


M_MSGS = Metric("msgs_per_s", "msgs/s", lambda r: r.get("msgs_per_s"))
M_DELIV = Metric("msgs_per_s", "deliveries/s", lambda r: r.get("msgs_per_s"))
M_PER_CPU = Metric("msgs_per_cpu_s", "msgs/CPU-s", _per_cpu(lambda r: r["msgs"]))
M_SRV = Metric(
    "server_busy",
    "srv cpu",
    lambda r: r["server_cpu_s"] / r["window_s"] if r.get("window_s") else None,
    "{:.2f}",
    False,
)
M_CORE = Metric(
    "server_core_busy",
    "srv core",
    lambda r: r.get("server_core_busy") if r.get("server_core_busy", -1) >= 0 else None,
    "{:.2f}",
    False,
    in_table=False,
)
M_GEN = Metric("gen_busy", "gen busy", lambda r: r.get("gen_busy"), "{:.2f}", False)


def _wait(key: str) -> Callable[[Result], float | None]:
    def get(r: Result) -> float | None:
        w = r.get(key, -1)
        return w / r["window_s"] if w is not None and w >= 0 and r.get("window_s") else None

    return get


M_SWAIT = Metric("server_runq_wait", "srv wait", _wait("server_runq_wait_s"), "{:.2f}", False)
M_GWAIT = Metric("gen_runq_wait", "gen wait", _wait("gen_runq_wait_s"), "{:.2f}", False)
M_GENCORE = Metric(
    "gen_core_busy",
    "gen core",
    lambda r: r.get("gen_core_busy") if r.get("gen_core_busy", -1) >= 0 else None,
    "{:.2f}",
    False,
    in_table=False,
)
M_P50 = Metric("p50_ms", "p50 ms", _lat("p50"), "{:.2f}", False)
M_P99 = Metric("p99_ms", "p99 ms", _lat("p99"), "{:.2f}", False)
M_P999 = Metric("p999_ms", "p99.9 ms", _lat("p999"), "{:.2f}", False)
M_FAN50 = Metric("fanout_p50_ms", "all-got-it p50 ms", _lat("p50"), "{:.1f}", False)
M_FAN99 = Metric("fanout_p99_ms", "p99 ms", _lat("p99"), "{:.1f}", False)
M_REQ = Metric("requests_per_s", "req/s", lambda r: r.get("requests_per_s"))


def _cpu_us(kind: str, count: Callable[[Result], float]) -> Callable[[Result], float | None]:
    """Server user (``utime``) or kernel (``stime``) CPU in µs per counted unit, from the
    clock ticks of /proc/PID/stat read at the measurement window's edges."""
    key = f"server_{kind}_s"

    def get(r: Result) -> float | None:
        cpu, n = r.get(key), count(r)
        return None if cpu is None or cpu < 0 or not n else 1e6 * float(cpu) / n

    return get


def _requests(r: Result) -> float:
    return float(r.get("http_sends", 0) + r.get("http_recvs", 0))


M_USR_MSG = Metric(
    "user_us_per_msg", "usr µs/msg", _cpu_us("utime", lambda r: r["msgs"]), "{:.2f}", False
)
M_SYS_MSG = Metric(
    "kernel_us_per_msg", "sys µs/msg", _cpu_us("stime", lambda r: r["msgs"]), "{:.2f}", False
)
M_USR_REQ = Metric("user_us_per_req", "usr µs/req", _cpu_us("utime", _requests), "{:.1f}", False)
M_SYS_REQ = Metric("kernel_us_per_req", "sys µs/req", _cpu_us("stime", _requests), "{:.1f}", False)


def _connect_cpu_us(kind: str) -> Callable[[Result], float | None]:
    key = f"server_connect_{kind}_s"

    def get(r: Result) -> float | None:
        cpu, n = r.get(key), r.get("units")
        return None if cpu is None or cpu < 0 or not n else 1e6 * float(cpu) / n

    return get


M_USR_OPEN = Metric("user_us_per_open", "usr µs/open", _connect_cpu_us("utime"), "{:.1f}", False)
M_SYS_OPEN = Metric("kernel_us_per_open", "sys µs/open", _connect_cpu_us("stime"), "{:.1f}", False)
M_REQ_CPU = Metric(
    "requests_per_cpu_s", "req/CPU-s", _per_cpu(lambda r: r["http_sends"] + r["http_recvs"])
)


def _rss_per_session(r: Result) -> float | None:
    before, after, n = r.get("rss_before_kb", -1), r.get("rss_after_kb", -1), r.get("units", 0)
    if before < 0 or after < 0 or not n:
        return None
    return (after - before) / n


M_RSS = Metric("kib_per_session", "KiB/session", _rss_per_session, "{:.2f}", False)
M_RSS_TOTAL = Metric(
    "rss_mib",
    "RSS MiB",
    lambda r: r["rss_after_kb"] / 1024 if r.get("rss_after_kb", -1) > 0 else None,
    "{:.1f}",
    False,
)
M_CONNECT = Metric(
    "connect_per_s",
    "opens/s",
    lambda r: r["units"] / r["connect_s"] if r.get("connect_s", 0) > 0 else None,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    title: str
    mode: str
    units: int
    prefix: str = "/echo"
    args: tuple[str, ...] = ()
    raw_ok: bool = False  # picows runs it too
    metrics: tuple[Metric, ...] = ()
    ratio_metrics: tuple[
        Metric, ...
    ] = ()  # compared with the references (median of per-round ratios)
    timeout: float = 30.0
    # The server's CPU split shown on the chart: (user, kernel) per this scenario's unit.
    cpu_split: tuple[Metric, Metric] = (M_USR_MSG, M_SYS_MSG)
    # Another scenario this one should match, per server (ratio of the first ratio metric
    # within each round): e.g. eventsource against xhr-streaming.
    compare_to: str | None = None
    # Over TLS: the servers get a certificate (--ssl-certfile/--ssl-keyfile) and the
    # generator speaks TLS to them; only servers with ServerSpec.tls run it.
    tls: bool = False

    def runs_on(self, server: ServerSpec) -> bool:
        """Whether this scenario applies to ``server`` (picows runs the raw-capable
        ones, TLS scenarios need a server that serves TLS, a server limited to some
        scenarios runs only those)."""
        return (
            (self.raw_ok or not server.raw)
            and (server.tls or not self.tls)
            and (not server.only or self.name in server.only)
        )

    def loadgen_args(self, units: int | None = None) -> list[str]:
        return ["--mode", self.mode, "--conns", str(units or self.units), *self.args]


ECHO_INFLIGHT = 8
BROADCAST_WINDOW = 16
STREAM_BATCH = 32
STREAM_WINDOW = 256


def build_scenarios(idle_sessions: int = 10_000) -> list[Scenario]:
    echo_metrics = (
        M_MSGS,
        M_PER_CPU,
        M_USR_MSG,
        M_SYS_MSG,
        M_P50,
        M_P99,
        M_SRV,
        M_SWAIT,
        M_GEN,
        M_GWAIT,
        M_CORE,
        M_GENCORE,
    )
    out = [
        Scenario(
            f"echo-{n}",
            "echo",
            f"WebSocket echo, closed loop: {n} session(s) x {ECHO_INFLIGHT} in flight, 32 B messages",
            "ws-echo",
            n,
            args=("--inflight", str(ECHO_INFLIGHT)),
            raw_ok=True,
            metrics=echo_metrics,
            ratio_metrics=(M_MSGS, M_PER_CPU),
        )
        for n in (1, 100, 1000)
    ]
    # echo-100 again over TLS (wss://, certificates made at run time): what TLS costs
    # each server, against its own plain echo-100 of the same round.
    out.append(
        Scenario(
            "echo-100-tls",
            "tls",
            f"WebSocket echo over TLS (wss): 100 sessions x {ECHO_INFLIGHT} in flight, 32 B messages",
            "ws-echo",
            100,
            args=("--inflight", str(ECHO_INFLIGHT)),
            metrics=echo_metrics,
            ratio_metrics=(M_MSGS, M_PER_CPU),
            compare_to="echo-100",
            tls=True,
        )
    )
    out.append(
        Scenario(
            "rate-10k",
            "rate",
            "WebSocket echo at a fixed 10,000 msgs/s over 100 sessions (latency from the scheduled send)",
            "ws-rate",
            100,
            args=("--rate", "10000"),
            raw_ok=True,
            metrics=(
                M_MSGS,
                M_P50,
                M_P99,
                M_P999,
                M_PER_CPU,
                M_USR_MSG,
                M_SYS_MSG,
                M_SRV,
                M_SWAIT,
                M_GEN,
                M_GWAIT,
                M_CORE,
                M_GENCORE,
            ),
            ratio_metrics=(M_P99, M_PER_CPU),
        )
    )
    # Broadcast twice over: one message in flight (the next leaves when every
    # session has the previous one) measures the fan-out latency, and every server
    # pays one write() per session per message; a publisher with a window of
    # BROADCAST_WINDOW messages in flight (a live feed) measures throughput, where
    # messages that arrive together can leave together.
    out.extend(
        Scenario(
            f"broadcast-{n}" + ("" if window == 1 else f"-w{window}"),
            "broadcast",
            f"broadcast fan-out: {n} WebSocket sessions, one publisher, "
            + ("1 message in flight" if window == 1 else f"{window} messages in flight"),
            "ws-broadcast",
            n,
            prefix="/broadcast",
            args=("--inflight", str(window)),
            metrics=(
                M_DELIV,
                M_PER_CPU,
                M_USR_MSG,
                M_SYS_MSG,
                M_FAN50,
                M_FAN99,
                M_SRV,
                M_SWAIT,
                M_GEN,
                M_GWAIT,
                M_CORE,
                M_GENCORE,
            ),
            ratio_metrics=(M_DELIV, M_FAN50),
            timeout=60.0,
        )
        for window in (1, BROADCAST_WINDOW)
        for n in (1000, 5000)
    )
    out.append(
        Scenario(
            f"idle-{idle_sessions // 1000}k"
            if idle_sessions % 1000 == 0
            else f"idle-{idle_sessions}",
            "idle",
            f"idle capacity: {idle_sessions:,} open WebSocket sessions (one echo each), server RSS",
            "ws-idle",
            idle_sessions,
            args=("--hold", "0.5"),
            raw_ok=True,
            metrics=(M_RSS, M_RSS_TOTAL, M_CONNECT, M_USR_OPEN, M_SYS_OPEN),
            ratio_metrics=(M_RSS, M_CONNECT),
            timeout=90.0,
            cpu_split=(M_USR_OPEN, M_SYS_OPEN),
        )
    )
    stream_metrics = (
        M_MSGS,
        M_PER_CPU,
        M_USR_MSG,
        M_SYS_MSG,
        M_REQ,
        M_USR_REQ,
        M_SYS_REQ,
        M_P50,
        M_SRV,
        M_SWAIT,
        M_GEN,
        M_GWAIT,
        M_CORE,
        M_GENCORE,
    )
    # Streaming receivers: each session an HTTP receiver plus an xhr_send connection
    # posting STREAM_BATCH messages per request while fewer than STREAM_WINDOW are in flight.
    for name, mode, what in (
        ("xhr-streaming", "xhr-stream", "xhr-streaming"),
        ("eventsource", "es-stream", "eventsource"),
        ("htmlfile", "htmlfile-stream", "htmlfile"),
    ):
        out.append(
            Scenario(
                name,
                "xhr",
                f"{what} receive rate: 10 sessions, xhr_send posts of {STREAM_BATCH} messages, "
                f"{STREAM_WINDOW} in flight each",
                mode,
                10,
                args=("--batch", str(STREAM_BATCH), "--inflight", str(STREAM_WINDOW)),
                metrics=stream_metrics,
                ratio_metrics=(M_MSGS, M_PER_CPU),
                compare_to=None if name == "xhr-streaming" else "xhr-streaming",
            )
        )
    poll_metrics = (
        M_REQ,
        M_REQ_CPU,
        M_USR_REQ,
        M_SYS_REQ,
        M_MSGS,
        M_USR_MSG,
        M_SYS_MSG,
        M_P50,
        M_SRV,
        M_SWAIT,
        M_GEN,
        M_GWAIT,
        M_CORE,
        M_GENCORE,
    )
    for name, mode, what in (
        ("xhr-polling", "xhr-poll", "xhr-polling + xhr_send"),
        ("jsonp-polling", "jsonp-poll", "jsonp-polling + jsonp_send (form-encoded)"),
    ):
        out.append(
            Scenario(
                name,
                "xhr",
                f"{what} request rate: 100 sessions, 1 message per send, 1 in flight",
                mode,
                100,
                args=("--batch", "1", "--inflight", "1"),
                metrics=poll_metrics,
                ratio_metrics=(M_REQ, M_REQ_CPU),
                cpu_split=(M_USR_REQ, M_SYS_REQ),
                compare_to=None if name == "xhr-polling" else "xhr-polling",
            )
        )
    return out


def select(scenarios: list[Scenario], wanted: list[str] | None) -> list[Scenario]:
    if not wanted:
        return scenarios
    names = [w.strip() for item in wanted for w in item.split(",") if w.strip()]
    picked = [s for s in scenarios if s.name in names or s.group in names]
    unknown = [n for n in names if not any(n in (s.name, s.group) for s in scenarios)]
    if unknown:
        choices = sorted({s.name for s in scenarios} | {s.group for s in scenarios})
        raise SystemExit(f"bench.load: unknown scenario(s) {unknown}; choose from {choices}")
    return picked
