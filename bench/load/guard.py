"""``python -m bench.load.guard``: the CI regression guard (a short load run, <= 3 minutes).

fastsockjs and sockjs-node 0.3.24 run the scenarios of THRESHOLDS in the same job, a
fresh server per run, server and load generator pinned to different cores, in
interleaved rounds (the server order alternating). Each round gives one ratio per
scenario (fastsockjs / sockjs-node, both measured within minutes of each other), and the
guard compares the *median* of those ratios with the scenario's threshold. A shared,
noisy machine slows both servers alike within a round, so the ratio holds where the
absolute numbers do not; a run whose server waited for its CPU is run again.

Prints one line per scenario: ``GUARD <scenario> ratio <x> threshold <y> PASS|FAIL``.
Only *clean* rounds count: before every run the guard waits (within its budget) for the
machine to be quiet, a run whose server or generator waited for its CPU more than 15% of
the window is repeated (twice at most, in the first half of the budget), and a round
counts when neither of its two runs waited more than 15%. Fewer than 3 clean rounds is INCONCLUSIVE, never PASS or FAIL.

Exit status: 0 when every ratio is at or above its threshold, 1 when one is below, 2 when
the guard could not run or could not decide (no node/npm, fewer than 2 cores, a failed
run, a machine too busy for 3 clean rounds). Outside CI (``CI`` unset) a missing
component is a skip (status 0) with the reason printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import prepare, runner
from bench.load.scenarios import SERVERS, Scenario, build_scenarios


@dataclass(frozen=True)
class Guard:
    scenario: str
    target: float  # the ratio fastsockjs promises (issue 12)
    threshold: float  # fail below this median ratio
    why: str


#: A round is clean when neither server nor generator of either run waited for its CPU
#: longer than this share of the window (other processes on a shared machine). In 5 guard
#: runs on the shared VM, rounds up to ~17% gave the ratios of quiet ones; from ~20% on
#: echo-100 fell by a third.
CLEAN = 0.15
#: Before a run the guard waits (within its budget) until other processes use less than
#: this share of the machine's CPUs.
QUIET = 0.10

#: The guarded ratios (fastsockjs / sockjs-node, median over rounds).
THRESHOLDS: tuple[Guard, ...] = (
    # Target 2.0x (issue 12). The threshold is 70% of the ratio measured once the
    # compiled request path landed, not of the target, so that losing it (a fast path
    # silently off) fails: guard medians on the 2-core VM on 2026-12-07 at 7160235 were
    # 3.03x and 3.30x, the full benchmark's 2.90x, a same-round before/after 2.96x:
    # 70% of 2.9x -> 2.0x. (Before that path: 1.52x, 70% of the 2.17x of 1fc3b6f.)
    Guard("xhr-polling", target=2.0, threshold=2.0, why="70% of the measured 2.9x"),
    # Target 5x (issue 12: no regression below it); 70% of the target. Measured 5.7-6.1x.
    Guard("echo-100", target=5.0, threshold=3.5, why="70% of the 5x target"),
)

SERVER_NAMES = ("fastsockjs", "sockjs-node")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.load.guard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rounds", type=int, default=5, help="clean rounds wanted per scenario (default 5)"
    )
    p.add_argument(
        "--max-rounds",
        type=int,
        default=9,
        help="rounds at most, while clean ones are missing and the budget lasts (default 9)",
    )
    p.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring")
    p.add_argument("--duration", type=float, default=1.5, help="seconds measured per run")
    p.add_argument(
        "--budget",
        type=float,
        default=160.0,
        help="seconds for the whole guard; rounds that would overrun it are dropped "
        "(at least 3 are always run)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="re-runs of a run disturbed by other processes (default 2; none once the "
        "budget is half spent)",
    )
    p.add_argument("--json", type=Path, help="write the runs and ratios here")
    return p.parse_args(argv)


def _cannot_run(why: str) -> int:
    if CI:
        print(f"GUARD ERROR: {why} (CI=true: the guard must run)", flush=True)
        return 2
    print(f"GUARD SKIPPED: {why}", flush=True)
    return 0


def _ratio_value(sc: Scenario, result: dict[str, Any]) -> float | None:
    if not result.get("ok"):
        return None
    v = sc.ratio_metrics[0].get(result)
    return None if v is None else float(v)


def disturbance(result: dict[str, Any]) -> float:
    """The larger share of the window that the server or the generator spent runnable
    but waiting for its CPU (/proc/PID/schedstat): what other processes took from it."""
    window = result.get("window_s") or 0
    if not result.get("ok") or window <= 0:
        return 1.0
    waits = [result.get("server_runq_wait_s", -1), result.get("gen_runq_wait_s", -1)]
    return max([w / window for w in waits if w is not None and w >= 0] or [0.0])


def _busy_share(interval: float = 0.3) -> float:
    """How busy the machine's CPUs are (0-1, all of them) over ``interval`` seconds, from
    /proc/stat: between runs nothing of ours runs, so this is other processes' load."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v) - v[3] - v[4], sum(v)

    b0, t0 = read()
    time.sleep(interval)
    b1, t1 = read()
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def wait_quiet(deadline: float, quiet: float = QUIET) -> float:
    """Wait (until ``deadline``, monotonic) for the machine to be quiet; the last share."""
    share = _busy_share()
    while share > quiet and time.monotonic() < deadline:
        time.sleep(1.0)
        share = _busy_share()
    return share


def _one(
    sc: Scenario, spec: Any, timing: runner.Timing, retries: int, wait_until: float
) -> dict[str, Any]:
    """One run, repeated (up to ``retries`` times) while the server or the generator
    waited for its CPU more than CLEAN of the window; the least disturbed attempt counts.
    Each attempt first waits (until ``wait_until`` at most) for the machine to be quiet."""
    wait_quiet(wait_until)
    attempts = [runner.one_run(sc, spec, timing)]
    while disturbance(attempts[-1]) > CLEAN and len(attempts) <= retries:
        wait_quiet(wait_until)
        attempts.append(runner.one_run(sc, spec, timing))
    best = min(attempts, key=lambda r: (not r.get("ok"), disturbance(r)))
    best["attempts"] = len(attempts)
    best["disturbance"] = round(disturbance(best), 4)
    return best


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    server_cpus, gen_cpus = runner.cores()
    if server_cpus is None or gen_cpus is None:
        return _cannot_run("fewer than 2 usable cores: server and generator cannot be pinned apart")
    why = prepare.ensure_sockjs_node() or prepare.fastsockjs_extension_missing()
    if why:
        return _cannot_run(why)
    prepare.build_loadgen()
    os.sched_setaffinity(0, gen_cpus)  # keep this driver off the server's core

    by_name = {sc.name: sc for sc in build_scenarios()}
    scenarios = [by_name[g.scenario] for g in THRESHOLDS]
    specs = [s for s in SERVERS if s.name in SERVER_NAMES]
    timing = runner.Timing(warmup=args.warmup, duration=args.duration)
    print(
        f"guard: {len(scenarios)} scenarios x {len(specs)} servers x up to {args.rounds} rounds, "
        f"{timing.warmup}s warm-up + {timing.duration}s measured per run; server on CPU "
        f"{sorted(server_cpus)}, generator on CPU {sorted(gen_cpus)}",
        flush=True,
    )
    ratios: dict[str, list[float]] = {g.scenario: [] for g in THRESHOLDS}
    clean: dict[str, list[float]] = {g.scenario: [] for g in THRESHOLDS}
    runs: list[dict[str, Any]] = []
    round_s: list[float] = []
    for rnd in range(max(args.max_rounds, args.rounds)):
        if rnd >= args.rounds and all(len(v) >= args.rounds for v in clean.values()):
            break
        left = args.budget - (time.monotonic() - t0)
        # (the last round: early ones may have spent time on re-runs)
        if rnd >= 3 and round_s and left < 1.2 * round_s[-1]:
            print(f"guard: stopping after {rnd} rounds ({left:.0f}s of the budget left)")
            break
        r0 = time.monotonic()
        for sc in scenarios:
            order = specs if rnd % 2 == 0 else specs[::-1]
            got: dict[str, float | None] = {}
            for spec in order:
                spent = time.monotonic() - t0
                res = _one(
                    sc,
                    spec,
                    timing,
                    args.retries if spent < args.budget / 2 else 0,
                    # waiting for quiet may use up to half of what is left
                    time.monotonic() + max(0.0, (args.budget - spent) / 2 - 10),
                )
                got[spec.name] = _ratio_value(sc, res)
                runs.append({"round": rnd, "scenario": sc.name, "server": spec.name, "result": res})
                if not res.get("ok"):
                    print(
                        f"guard: {sc.name} on {spec.name} failed: {res.get('failure')} "
                        f"{' | '.join(res.get('stderr', [])[-2:])}",
                        flush=True,
                    )
            a, b = got.get("fastsockjs"), got.get("sockjs-node")
            dist = max(r["result"].get("disturbance", 1.0) for r in runs[-len(order) :])
            if a is not None and b:
                ratios[sc.name].append(a / b)
                if dist <= CLEAN:
                    clean[sc.name].append(a / b)
            label = sc.ratio_metrics[0].label
            tries = sum(r["result"].get("attempts", 1) for r in runs[-len(order) :])
            print(
                f"  round {rnd + 1}: {sc.name:<12} fastsockjs {a or 0:>10,.0f} {label}  "
                f"sockjs-node {b or 0:>10,.0f}  ratio "
                + (f"{a / b:.2f}x" if a is not None and b else "-")
                + f"  (cpu wait {dist:.0%}, {tries} runs)",
                flush=True,
            )
        round_s.append(time.monotonic() - r0)

    status = 0
    report: list[dict[str, Any]] = []
    for g in THRESHOLDS:
        # Only clean rounds decide. Under heavy contention the ratios drift either way
        # (measured: echo-100 fell from 5.7x to 2.6x when other jobs took 70% of the
        # CPUs), so too few clean rounds is no verdict: INCONCLUSIVE, status 2.
        vals = clean[g.scenario]
        if len(vals) < 3:
            every = ratios[g.scenario]
            print(
                f"GUARD {g.scenario:<12} INCONCLUSIVE: {len(vals)} clean rounds of "
                f"{len(every)} (need 3): other processes kept the CPUs busy"
                + (f" (median of all rounds {statistics.median(every):.2f}x)" if every else ""),
                flush=True,
            )
            status = max(status, 2)
            continue
        which = "clean"
        med = statistics.median(vals)
        ok = med >= g.threshold
        status = max(status, 0 if ok else 1)
        print(
            f"GUARD {g.scenario:<12} ratio {med:5.2f}x  threshold {g.threshold:.2f}x  "
            f"{'PASS' if ok else 'FAIL'}  (target {g.target:.1f}x; median of {len(vals)} "
            f"{which} rounds, {min(vals):.2f}-{max(vals):.2f}x)",
            flush=True,
        )
        report.append(
            {
                "scenario": g.scenario,
                "median": med,
                "per_round": vals,
                "all_rounds": ratios[g.scenario],
                "clean_rounds": clean[g.scenario],
                "threshold": g.threshold,
                "target": g.target,
                "pass": ok,
            }
        )
    elapsed = time.monotonic() - t0
    print(f"guard: {elapsed:.0f}s in all", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "elapsed_s": round(elapsed, 1),
                    "machine": prepare.machine_facts(),
                    "guards": report,
                    "runs": runs,
                },
                indent=1,
            )
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
