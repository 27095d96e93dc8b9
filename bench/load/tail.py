"""``python -m bench.load.tail``: tail latency of the rate-10k scenario, many runs pooled.

WebSocket echo at a fixed 10,000 msgs/s over 100 sessions (open loop, latency from
each message's scheduled send time), run ``--runs`` times on every variant of the
fastsockjs benchmark server (``--gc`` modes of bench/load/fastsockjs_server.py) and on
raw picows (and sockjs-node with ``--node``), interleaved: every round runs each
server once, the order rotating. Each run is a fresh server, pinned to one core, the
generator on the other.

Per variant it prints the median over runs of p50/p99/p99.9, the pooled p99/p99.9 of
every latency of every run (from the generator's histograms: 16 buckets per octave,
so within 4.4%), the p99 ratio to picows within each round, a coarse histogram, and
the server's garbage-collector pauses (count per second, longest, over 1 ms). JSON goes
to bench/results/tail-<date>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.load import guard, prepare, runner
from bench.load.prepare import BENCH, log
from bench.load.scenarios import SERVERS, build_scenarios

BINS_MS = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.load.tail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=10, help="runs per server (default 10)")
    p.add_argument(
        "--gc",
        default="default,freeze",
        help="comma-separated --gc modes of the fastsockjs server (default, freeze, "
        "freeze-t<N>, off); default: default,freeze",
    )
    p.add_argument("--no-picows", action="store_true", help="leave out the raw picows echo")
    p.add_argument("--node", action="store_true", help="add sockjs-node")
    p.add_argument("--rate", type=int, default=10_000, help="messages per second (default 10000)")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=2.5)
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds to wait at most before a run for other processes to calm down",
    )
    p.add_argument(
        "--baseline", type=Path, default=None,
        help="another checkout (its extension built in place) whose server runs in the "
        "same rounds with the first --gc mode, for a before/after comparison",
    )
    p.add_argument("--output", type=Path, default=BENCH / "results")
    return p.parse_args(argv)


def loadavg() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages (what other jobs were doing)."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return []


def pooled_quantile(hist: dict[int, int], q: float) -> float | None:
    """The q-quantile (ms) of a merged histogram: the upper edge of its bucket."""
    total = sum(hist.values())
    if not total:
        return None
    want = q * total
    seen = 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= want:
            return math.pow(2.0, (k + 1) / 16.0) / 1e6
    return None


def coarse(hist: dict[int, int]) -> list[float]:
    """Shares of the messages in BINS_MS (plus one open bin above the last edge)."""
    total = sum(hist.values()) or 1
    out = [0] * (len(BINS_MS) + 1)
    for k, n in hist.items():
        lo_ms = math.pow(2.0, k / 16.0) / 1e6
        i = next((j for j, edge in enumerate(BINS_MS) if lo_ms < edge), len(BINS_MS))
        out[i] += n
    return [n / total for n in out]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare.build_loadgen()
    server_cpus, gen_cpus = runner.cores()
    if gen_cpus:
        os.sched_setaffinity(0, gen_cpus)
    base = next(s for s in build_scenarios() if s.name == "rate-10k")
    sc = replace(base, args=("--rate", str(args.rate)))
    fast = next(s for s in SERVERS if s.name == "fastsockjs")
    specs = []
    for mode in [m.strip() for m in args.gc.split(",") if m.strip()]:
        specs.append(
            replace(
                fast, name=f"fastsockjs[gc={mode}]", argv=fast.argv + ["--gc", mode, "--gc-stats"]
            )
        )
    if args.baseline is not None:
        mode = specs[0].argv[-2] if specs else "default"
        specs.append(
            replace(
                fast, name=f"baseline[gc={mode}]", source=args.baseline.resolve(),
                argv=fast.argv + ["--gc", mode, "--gc-stats"],
            )
        )
    if not args.no_picows and not prepare.picows_missing():
        specs.append(next(s for s in SERVERS if s.name == "picows"))
    if args.node and not prepare.ensure_sockjs_node():
        specs.append(next(s for s in SERVERS if s.name == "sockjs-node"))
    timing = runner.Timing(args.warmup, args.duration)
    log(
        f"{args.runs} rounds x {len(specs)} servers of {sc.name} at {args.rate} msgs/s, "
        f"{timing.warmup}s warm-up + {timing.duration}s measured each"
    )
    runs: list[dict[str, Any]] = []
    for rnd in range(args.runs):
        shift = rnd % len(specs)
        for spec in specs[shift:] + specs[:shift]:
            busy = guard.wait_quiet(time.monotonic() + args.quiet_wait)
            load = loadavg()
            server = runner.ServerProcess(spec, server_cpus)
            try:
                res = runner.run_loadgen(sc, server, timing, gen_cpus)
            finally:
                server.stop()
            gcs = None
            for line in server.stderr_text.splitlines():
                if line.startswith("GCSTATS "):
                    gcs = json.loads(line[len("GCSTATS ") :])
            res.pop("stderr", None)
            runs.append(
                {
                    "round": rnd,
                    "server": spec.name,
                    "result": res,
                    "gc": gcs,
                    "busy_before": busy,
                    "loadavg": load,
                }
            )
            lat = res.get("lat_ms", {})
            log(
                f"[{rnd + 1:2}/{args.runs}] {spec.name:<26} "
                + (
                    f"p50 {lat['p50']:.3f} p99 {lat['p99']:.3f} p99.9 {lat['p999']:.3f} "
                    f"max {lat['max']:.2f} ms"
                    if res.get("ok")
                    else f"FAILED {res.get('failure')}"
                )
                + (
                    f"  gc: {sum(g['n'] for k, g in gcs.items() if k.startswith('gen'))} "
                    f"collections, longest {max(g['max_ms'] for k, g in gcs.items() if k.startswith('gen')):.2f} ms"
                    if gcs
                    else ""
                )
                + (f"  load {load[0]:.2f}" if load else "")
            )
    summary = summarize(specs, runs, args.runs)
    print(table(summary))
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.output / f"tail-{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": prepare.machine_facts(),
                "rate": args.rate,
                "loadavg_end": loadavg(),
                "summary": summary,
                "runs": runs,
            },
            indent=1,
        )
    )
    log(f"results: {path}")
    return 0


def summarize(specs: list[Any], runs: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ref = {
        r["round"]: r["result"] for r in runs if r["server"] == "picows" and r["result"].get("ok")
    }
    for spec in specs:
        mine = [r for r in runs if r["server"] == spec.name and r["result"].get("ok")]
        if not mine:
            continue
        hist: dict[int, int] = {}
        for r in mine:
            for k, n in r["result"].get("lat_hist", []):
                hist[k] = hist.get(k, 0) + n
        lat = [r["result"]["lat_ms"] for r in mine]
        p99_vs = [
            r["result"]["lat_ms"]["p99"] / ref[r["round"]]["lat_ms"]["p99"]
            for r in mine
            if r["round"] in ref and ref[r["round"]]["lat_ms"]["p99"] > 0
        ]
        entry: dict[str, Any] = {
            "runs": len(mine),
            "median_p50": statistics.median(x["p50"] for x in lat),
            "median_p99": statistics.median(x["p99"] for x in lat),
            "median_p999": statistics.median(x["p999"] for x in lat),
            "worst_p999": max(x["p999"] for x in lat),
            "max": max(x["max"] for x in lat),
            "pooled_p99": pooled_quantile(hist, 0.99),
            "pooled_p999": pooled_quantile(hist, 0.999),
            "pooled_p9999": pooled_quantile(hist, 0.9999),
            "messages": sum(hist.values()),
            "coarse": coarse(hist),
            "p99_vs_picows": statistics.median(p99_vs) if p99_vs else None,
            "server_cpu": statistics.median(
                r["result"]["server_cpu_s"] / r["result"]["window_s"] for r in mine
            ),
            "load_1min": statistics.median(r["loadavg"][0] for r in mine if r.get("loadavg"))
            if any(r.get("loadavg") for r in mine)
            else None,
            "load_1min_max": max((r["loadavg"][0] for r in mine if r.get("loadavg")), default=None),
            "cpu_wait": statistics.median(
                max(r["result"].get("server_runq_wait_s", 0), 0) / r["result"]["window_s"]
                for r in mine
            ),
        }
        gcs = [r["gc"] for r in mine if r.get("gc")]
        if gcs:
            secs = sum(r["result"]["window_s"] for r in mine)  # ~ the measured share
            entry["gc"] = {
                gen: {
                    "per_run": statistics.median(g[gen]["n"] for g in gcs),
                    "max_ms": max(g[gen]["max_ms"] for g in gcs),
                    "over_1ms_per_run": statistics.median(g[gen]["over_1ms"] for g in gcs),
                    "total_ms_per_run": statistics.median(g[gen]["total_ms"] for g in gcs),
                }
                for gen in ("gen0", "gen1", "gen2")
            }
            entry["gc"]["window_s_total"] = secs
        out[spec.name] = entry
    return out


def table(summary: dict[str, Any]) -> str:
    head = (
        f"{'server':<26} {'runs':>4} {'p50':>6} {'p99':>6} {'p99.9':>6} {'worst':>6} "
        f"{'pool99':>6} {'pool99.9':>8} {'pool99.99':>9} {'max':>6} {'p99/picows':>10} "
        f"{'cpu':>5} {'wait':>5} {'load':>9}"
    )
    lines = [
        "",
        "rate-10k tail latency (ms; p50/p99/p99.9: median over runs; pool: all runs' messages;"
        " load: the 1-minute load average before each run, median/max)",
        head,
    ]
    for name, e in summary.items():
        vs = f"{e['p99_vs_picows']:.2f}x" if e.get("p99_vs_picows") else "-"
        lines.append(
            f"{name:<26} {e['runs']:>4} {e['median_p50']:6.3f} {e['median_p99']:6.3f} "
            f"{e['median_p999']:6.3f} {e['worst_p999']:6.2f} {e['pooled_p99']:6.3f} "
            f"{e['pooled_p999']:8.3f} {e['pooled_p9999']:9.3f} {e['max']:6.2f} {vs:>10} "
            f"{e['server_cpu']:5.2f} {e['cpu_wait']:5.2f} "
            + (
                f"{e['load_1min']:4.2f}/{e['load_1min_max']:4.2f}"
                if e.get("load_1min") is not None
                else f"{'-':>9}"
            )
        )
    edges = (
        ["<0.1"] + [f"{a:g}-{b:g}" for a, b in itertools.pairwise(BINS_MS)] + [f">{BINS_MS[-1]:g}"]
    )
    lines += [
        "",
        "histogram (share of messages per latency bin, ms)",
        f"{'server':<26} " + " ".join(f"{e:>9}" for e in edges),
    ]
    for name, e in summary.items():
        lines.append(f"{name:<26} " + " ".join(f"{100 * s:8.3f}%" for s in e["coarse"]))
    gc_rows = [(n, e["gc"]) for n, e in summary.items() if e.get("gc")]
    if gc_rows:
        lines += [
            "",
            "server GC after start-up, per run (median): collections gen0/gen1/gen2, total ms, longest ms, >1 ms",
        ]
        for name, g in gc_rows:
            lines.append(
                f"{name:<26} "
                + "  ".join(
                    f"{gen}: {g[gen]['per_run']:.0f} x, {g[gen]['total_ms_per_run']:.2f} ms, "
                    f"max {g[gen]['max_ms']:.2f}, >1ms {g[gen]['over_1ms_per_run']:.0f}"
                    for gen in ("gen0", "gen1", "gen2")
                )
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
