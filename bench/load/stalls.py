"""``python -m bench.load.stalls``: whose are the rate-10k stalls, the server's or the machine's?

A message waits longer than a millisecond in a server for one of three reasons:

* **work**: one event-loop iteration (from ``epoll_wait`` returning to the next call)
  ran on the CPU for that long: the server's own code (a GC pass, a big batch);
* **preempted**: the server was runnable but another task had its core;
* **wakeup**: data arrived while it slept in ``epoll_wait``, and it was woken but
  waited that long for its core.

The last two are the machine's. This runs ``rate-10k`` ``--runs`` times on each
server (the ``--gc`` modes of the fastsockjs benchmark server and raw picows,
interleaved, as ``bench.load.tail`` does) under ``perf record -a`` (``sched_switch``,
``sched_wakeup``, the epoll syscalls; system-wide, so that it sees who ran instead
and the wakeups the generator's core makes), and counts each kind above 0.5 and 1 ms
in the load window (warm-up and measured part, as the generator's exit dates it). Needs perf and the permission to trace (root or
``kernel.perf_event_paranoid`` <= -1).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.load import guard, prepare, runner
from bench.load.prepare import BENCH, log
from bench.load.scenarios import SERVERS, build_scenarios
from bench.load.tail import loadavg

EVENTS = [
    "sched:sched_switch",
    "sched:sched_wakeup",
    # Reads per iteration: how many messages a long iteration handled (a backlog
    # after a stall, or one slow message).
    "syscalls:sys_enter_read",
    *(
        f"syscalls:sys_{d}_{name}"
        for name in ("epoll_wait", "epoll_pwait", "epoll_pwait2")
        for d in ("enter", "exit")
    ),
]
EDGES_MS = (0.5, 1.0, 2.0)
# perf script lines: "comm  pid/tid [cpu] time: event: fields"
_LINE = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+([\w:]+):\s*(.*)$")
_SWITCH = re.compile(r"prev_pid=(\d+).*?prev_state=(\S+) ==> next_comm=(.+?) next_pid=(\d+)")
_WAKEUP = re.compile(r"pid=(\d+)")


def analyse(lines: list[str], pid: int, t0: float, t1: float) -> dict[str, Any]:
    """Iteration CPU time, preemption and wakeup delays of ``pid``'s tasks in [t0, t1]."""
    work: list[float] = []  # on-CPU ms per loop iteration
    reads: list[int] = []  # read() calls of each of those iterations
    n_reads = 0
    preempted: list[float] = []  # ms runnable but off the CPU, per preemption
    wakeup: list[float] = []  # ms from wakeup to running
    thieves: collections.Counter[str] = collections.Counter()
    tids: set[int] = set()
    iter_start: float | None = None
    iter_off = 0.0
    out_at: float | None = None  # switched out while runnable, at
    out_next = ""
    woken_at: float | None = None
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        _comm, p, tid, _cpu, ts_s, event, rest = m.groups()
        ts = float(ts_s)
        if event == "sched:sched_switch":
            s = _SWITCH.search(rest)
            if not s:
                continue
            prev_pid, prev_state, next_comm, next_pid = s.groups()
            if int(prev_pid) in tids and prev_state.startswith("R"):
                out_at, out_next = ts, next_comm
            if int(next_pid) in tids:
                if out_at is not None:
                    gap = ts - out_at
                    if t0 <= ts <= t1:
                        preempted.append(gap * 1e3)
                        thieves[out_next] += 1
                    if iter_start is not None:
                        iter_off += gap
                    out_at = None
                if woken_at is not None:
                    if t0 <= ts <= t1:
                        wakeup.append((ts - woken_at) * 1e3)
                    woken_at = None
            continue
        if event == "sched:sched_wakeup":
            w = _WAKEUP.search(rest)
            if w and int(w.group(1)) in tids:
                woken_at = ts
            continue
        if int(p) != pid:
            continue
        tids.add(int(tid))
        if event == "syscalls:sys_enter_read":
            n_reads += 1
        elif event.startswith("syscalls:sys_exit_epoll"):
            iter_start, iter_off, n_reads = ts, 0.0, 0
        elif event.startswith("syscalls:sys_enter_epoll") and iter_start is not None:
            if t0 <= ts <= t1:
                work.append((ts - iter_start - iter_off) * 1e3)
                reads.append(n_reads)
            iter_start = None
    return {
        "work": work,
        "reads": reads,
        "preempted": preempted,
        "wakeup": wakeup,
        "thieves": thieves,
    }


def batches(work: list[float], reads: list[int]) -> dict[str, Any]:
    """Whether long iterations are backlogs (many reads) or slow single messages."""
    total_reads = sum(reads) or 1
    long = [(w, n) for w, n in zip(work, reads, strict=True) if w > 1.0]
    return {
        "us_per_read": round(sum(work) * 1e3 / total_reads, 2),
        "long_reads": sorted(n for _, n in long),
        "long_us_per_read": sorted(round(w * 1e3 / max(n, 1), 1) for w, n in long),
    }


def counts(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "max_ms": round(max(values), 3) if values else 0.0,
        "total_ms": round(sum(values), 3),
        **{f"over_{e:g}ms": sum(v > e for v in values) for e in EDGES_MS},
    }


def one(
    perf: str,
    spec: Any,
    sc: Any,
    timing: Any,
    server_cpus: set[int],
    gen_cpus: set[int] | None,
    tmp: Path,
) -> dict[str, Any]:
    server = runner.ServerProcess(spec, server_cpus)
    data = tmp / "perf.data"
    try:
        rec = subprocess.Popen(
            [
                perf,
                "record",
                "-q",
                "-k",
                "CLOCK_MONOTONIC",
                "-a",
                *(x for e in EVENTS for x in ("-e", e)),
                "-o",
                str(data),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: runner.os.sched_setaffinity(0, gen_cpus)) if gen_cpus else None,
        )
        time.sleep(0.5)
        res = runner.run_loadgen(sc, server, timing, gen_cpus)
        end = time.monotonic()
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
    finally:
        server.stop()
    # The load window: warm-up and measured part, which end as the generator exits
    # (less a little for its closing handshakes).
    t1 = end - 0.2
    t0 = t1 - (timing.warmup + timing.duration) + 0.2
    script = subprocess.run(
        [perf, "script", "-F", "comm,pid,tid,cpu,time,event,trace", "-i", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = analyse(script.stdout.splitlines(), server.pid, t0, t1)
    res.pop("stderr", None)
    return {
        "lat_ms": res.get("lat_ms"),
        "ok": res.get("ok"),
        "work": counts(found["work"]),
        "batches": batches(found["work"], found["reads"]),
        "preempted": counts(found["preempted"]),
        "wakeup": counts(found["wakeup"]),
        "thieves": found["thieves"].most_common(5),
        "window_s": t1 - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.load.stalls",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--gc", default="default,freeze")
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=2.5)
    p.add_argument("--quiet-wait", type=float, default=20.0)
    p.add_argument("--output", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    perf = shutil.which("perf")
    if not perf:
        raise SystemExit("bench.load.stalls: perf is not installed")
    prepare.build_loadgen()
    server_cpus, gen_cpus = runner.cores()
    if server_cpus is None:
        raise SystemExit("bench.load.stalls: needs two cores (server and generator)")
    if gen_cpus:
        runner.os.sched_setaffinity(0, gen_cpus)
    base = next(s for s in build_scenarios() if s.name == "rate-10k")
    sc = replace(base, args=("--rate", str(args.rate)))
    fast = next(s for s in SERVERS if s.name == "fastsockjs")
    specs = [
        replace(fast, name=f"fastsockjs[gc={m}]", argv=[*fast.argv, "--gc", m])
        for m in (x.strip() for x in args.gc.split(","))
        if m
    ]
    if not prepare.picows_missing():
        specs.append(next(s for s in SERVERS if s.name == "picows"))
    timing = runner.Timing(args.warmup, args.duration)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.runs):
            shift = rnd % len(specs)
            for spec in specs[shift:] + specs[:shift]:
                guard.wait_quiet(time.monotonic() + args.quiet_wait)
                load = loadavg()
                r = one(perf, spec, sc, timing, server_cpus, gen_cpus, Path(tmp))
                r.update(round=rnd, server=spec.name, loadavg=load)
                runs.append(r)
                lat = r["lat_ms"] or {}
                log(
                    f"[{rnd + 1:2}/{args.runs}] {spec.name:<24} p99.9 {lat.get('p999', -1):6.2f}"
                    f"  work>1ms {r['work']['over_1ms']:3} (max {r['work']['max_ms']:.2f})"
                    f"  preempted>1ms {r['preempted']['over_1ms']:3}"
                    f" (max {r['preempted']['max_ms']:.2f})"
                    f"  wakeup>1ms {r['wakeup']['over_1ms']:3}"
                    f" (max {r['wakeup']['max_ms']:.2f})  load {load[0] if load else -1:.2f}"
                    f"  {r['batches']['us_per_read']} us/read; iterations >1 ms: reads"
                    f" {r['batches']['long_reads']}, us/read {r['batches']['long_us_per_read']}"
                )
    print(table(specs, runs))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"stalls-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps({"rate": args.rate, "machine": prepare.machine_facts(), "runs": runs}, indent=1)
    )
    log(f"results: {path}")
    return 0


def table(specs: list[Any], runs: list[dict[str, Any]]) -> str:
    lines = [
        "",
        "rate-10k stalls in the load window, per run (median over runs; max: worst of all runs)",
        f"{'server':<24} {'runs':>4} {'p99.9':>6} "
        + " ".join(
            f"{k + '>' + format(e, 'g'):>13}"
            for k in ("work", "preempt", "wakeup")
            for e in EDGES_MS[:2]
        )
        + f" {'work max':>8} {'preempt max':>11} {'wakeup max':>10} {'load':>5}",
    ]
    for spec in specs:
        mine = [r for r in runs if r["server"] == spec.name and r["ok"]]
        if not mine:
            continue
        med = statistics.median
        cells = [
            f"{med(r[k][f'over_{e:g}ms'] for r in mine):13g}"
            for k in ("work", "preempted", "wakeup")
            for e in EDGES_MS[:2]
        ]
        lines.append(
            f"{spec.name:<24} {len(mine):>4} {med(r['lat_ms']['p999'] for r in mine):6.2f} "
            + " ".join(cells)
            + f" {max(r['work']['max_ms'] for r in mine):8.2f}"
            f" {max(r['preempted']['max_ms'] for r in mine):11.2f}"
            f" {max(r['wakeup']['max_ms'] for r in mine):10.2f}"
            f" {med(r['loadavg'][0] for r in mine if r['loadavg']):5.2f}"
        )
    thieves: collections.Counter[str] = collections.Counter()
    for r in runs:
        for name, n in r["thieves"]:
            thieves[name] += n
    lines.append(
        "tasks that took the server's core (preemptions, all runs): "
        + ", ".join(f"{k} {v}" for k, v in thieves.most_common(8))
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
