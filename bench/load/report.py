"""Medians, within-round ratios, the printed table and the PNG chart."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.load.scenarios import REFERENCES, Metric, Scenario

GEN_BOUND = 0.9  # generator busier than this: the number may be the generator's limit


def _value(metric: Metric, result: dict[str, Any]) -> float | None:
    if not result.get("ok"):
        return None
    try:
        v = metric.get(result)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    return None if v is None else float(v)


def summarize(
    scenarios: list[Scenario], servers: list[str], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per scenario and server: median/min/max of each metric over the rounds, and for
    each reference server the median of the per-round ratios."""
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for run in runs:
        by[(run["scenario"], run["server"])][run["round"]] = run["result"]
    out: dict[str, Any] = {}
    for sc in scenarios:
        entry: dict[str, Any] = {"title": sc.title, "servers": {}}
        for srv in servers:
            rounds = by.get((sc.name, srv))
            if not rounds:
                continue
            stats: dict[str, Any] = {
                "rounds": len(rounds),
                "ok_rounds": sum(bool(r.get("ok")) for r in rounds.values()),
            }
            for m in sc.metrics:
                vals = [v for r in rounds.values() if (v := _value(m, r)) is not None]
                if vals:
                    stats[m.key] = {
                        "median": statistics.median(vals),
                        "min": min(vals),
                        "max": max(vals),
                        "n": len(vals),
                    }
            ratios: dict[str, Any] = {}
            for ref in REFERENCES:
                ref_rounds = by.get((sc.name, ref))
                if not ref_rounds or ref == srv:
                    continue
                for m in sc.ratio_metrics:
                    per_round = []
                    for rnd, res in rounds.items():
                        a, b = _value(m, res), _value(m, ref_rounds.get(rnd, {}))
                        if a is not None and b:
                            per_round.append(a / b)
                    if per_round:
                        ratios.setdefault(ref, {})[m.key] = {
                            "median": statistics.median(per_round),
                            "per_round": per_round,
                        }
            stats["ratios"] = ratios
            # The same server on a sibling scenario (e.g. eventsource vs xhr-streaming).
            other = by.get((sc.compare_to, srv)) if sc.compare_to else None
            if other and sc.ratio_metrics:
                m = sc.ratio_metrics[0]
                per_round = []
                for rnd, res in rounds.items():
                    a, b = _value(m, res), _value(m, other.get(rnd, {}))
                    if a is not None and b:
                        per_round.append(a / b)
                if per_round:
                    stats["vs_scenario"] = {
                        "scenario": sc.compare_to,
                        "metric": m.key,
                        "median": statistics.median(per_round),
                        "per_round": per_round,
                    }
            failures = [r.get("failure") for r in rounds.values() if not r.get("ok")]
            if failures:
                stats["failures"] = failures
            entry["servers"][srv] = stats
        out[sc.name] = entry
    return out


def _fmt(metric: Metric, stats: dict[str, Any], spread: bool = False) -> str:
    s = stats.get(metric.key)
    if not s:
        return "-"
    text = metric.fmt.format(s["median"])
    if spread and s["n"] > 1 and s["median"]:
        text += f" ±{50 * (s['max'] - s['min']) / abs(s['median']):.0f}%"
    return text


def table(scenarios: list[Scenario], servers: list[str], summary: dict[str, Any]) -> str:
    lines: list[str] = []
    for sc in scenarios:
        entry = summary.get(sc.name)
        if not entry or not entry["servers"]:
            continue
        lines.append("")
        lines.append(f"== {sc.name}: {sc.title}")
        ratio_cols = [
            (ref, m)
            for m in sc.ratio_metrics
            for ref in REFERENCES
            if any(ref in st["ratios"] for st in entry["servers"].values())
        ]
        shown = [m for m in sc.metrics if m.in_table]
        head = (
            ["server"] + [m.label for m in shown] + [f"{m.label} vs {ref}" for ref, m in ratio_cols]
        )
        sibling = sc.compare_to and any("vs_scenario" in st for st in entry["servers"].values())
        if sibling:
            head.append(f"{sc.ratio_metrics[0].label} vs {sc.compare_to}")
        rows = []
        footnotes: list[str] = []
        for srv in servers:
            st = entry["servers"].get(srv)
            if st is None:
                continue
            row = [srv] + [_fmt(m, st, i == 0) for i, m in enumerate(shown)]
            for ref, m in ratio_cols:
                r = st["ratios"].get(ref, {}).get(m.key)
                row.append(f"{r['median']:.2f}x" if r else ("1" if srv == ref else "-"))
            if sibling:
                vs = st.get("vs_scenario")
                row.append(f"{vs['median']:.2f}x" if vs else "-")
            notes = []
            if st["ok_rounds"] < st["rounds"]:
                notes.append(f"{st['rounds'] - st['ok_rounds']} failed run(s): {st['failures'][0]}")
            gen = st.get("gen_busy", {}).get("median", 0)
            if gen > GEN_BOUND:
                notes.append("generator >90% busy: a lower bound")
            if notes:
                footnotes.append(f"  ! {srv}: " + "; ".join(notes))
            rows.append(row)
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        fmt_row = lambda r: "  ".join(  # noqa: E731
            (str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]))
            for i, c in enumerate(r)
        )
        lines.append(fmt_row(head))
        lines.extend(fmt_row(r) for r in rows)
        lines.extend(footnotes)
        lower = [m.label for m in sc.ratio_metrics if not m.higher_is_better]
        note = (
            "  (±: half the min-max range over rounds; ratios: median of per-round server/reference"
        )
        lines.append(note + (f"; for {', '.join(lower)} lower is better)" if lower else ")"))
    return "\n".join(lines)


COLORS = {
    "fastsockjs": "#1f77b4",
    "fastsockjs-purepy": "#aec7e8",
    "sockjs-node": "#2ca02c",
    "picows": "#7f7f7f",
}


def chart(
    scenarios: list[Scenario],
    servers: list[str],
    summary: dict[str, Any],
    path: Path,
    subtitle: str,
) -> Path | None:
    """Two panels per scenario: its headline metric per server (bars: median, whiskers:
    min-max), and the server's CPU per unit split into user and kernel time (stacked
    medians)."""
    panels = []
    for sc in scenarios:
        entry = summary.get(sc.name)
        if not entry or not entry["servers"]:
            continue
        metric = sc.ratio_metrics[0]
        if sc.group == "rate":
            metric = next(m for m in sc.metrics if m.key == "p99_ms")
        bars = []
        for srv in servers:
            st = entry["servers"].get(srv, {}).get(metric.key)
            if st:
                bars.append((srv, st["median"], st["min"], st["max"]))
        if bars:
            split = []
            for srv in servers:
                st = entry["servers"].get(srv, {})
                u, k = (st.get(m.key, {}).get("median") for m in sc.cpu_split)
                if u is not None and k is not None:
                    split.append((srv, u, k))
            panels.append((sc, metric, bars, split))
    if not panels:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _fallback_png([p[:3] for p in panels], path)
    cols = 4  # two scenarios per row, each: headline | CPU split
    rows = (2 * len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[2 * len(panels) :]:
        ax.set_visible(False)
    flat = list(axes.flat)
    for i, (sc, metric, bars, split) in enumerate(panels):
        _cpu_panel(flat[2 * i + 1], sc, split)
        ax = flat[2 * i]
        names = [b[0] for b in bars]
        med = [b[1] for b in bars]
        err = [[b[1] - b[2] for b in bars], [b[3] - b[1] for b in bars]]
        ax.bar(
            range(len(bars)),
            med,
            yerr=err,
            capsize=3,
            color=[COLORS.get(n, "#999999") for n in names],
        )
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels(names, rotation=15, fontsize=8)
        better = "higher" if metric.higher_is_better else "lower"
        ax.set_title(f"{sc.name}: {metric.label} ({better} is better)", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        for i, v in enumerate(med):
            ax.annotate(
                metric.fmt.format(v),
                (i, v),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
    fig.suptitle(f"fastsockjs load benchmark — {subtitle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cpu_panel(ax: Any, sc: Scenario, split: list[tuple[str, float, float]]) -> None:
    """Stacked bars: the server's user (solid) and kernel (hatched) µs per unit."""
    user_m, _kernel_m = sc.cpu_split
    unit = user_m.label.split("/")[-1]
    if not split:
        ax.set_visible(False)
        return
    names = [s[0] for s in split]
    user = [s[1] for s in split]
    kern = [s[2] for s in split]
    colors = [COLORS.get(n, "#999999") for n in names]
    x = range(len(split))
    ax.bar(x, user, color=colors, label="user")
    ax.bar(x, kern, bottom=user, color=colors, alpha=0.45, hatch="//", label="kernel")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=15, fontsize=8)
    ax.set_title(f"{sc.name}: server CPU µs/{unit}, user + kernel (lower is better)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    for i, (u, k) in enumerate(zip(user, kern)):
        ax.annotate(
            f"{u:.2g} + {k:.2g}",
            (i, u + k),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.legend(fontsize=6, loc="upper right")


def _fallback_png(panels: list[Any], path: Path) -> Path:
    """Without matplotlib: bars only (no text), one row per scenario, colours as COLORS."""
    import struct
    import zlib

    w, row_h, bar_h = 600, 18 * 4 + 10, 16
    h = row_h * len(panels)
    img = bytearray(b"\xff" * (w * h * 3))

    def rect(x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        for y in range(max(0, y0), min(h, y1)):
            off = (y * w + max(0, x0)) * 3
            img[off : off + 3 * (min(w, x1) - max(0, x0))] = bytes(rgb) * (min(w, x1) - max(0, x0))

    for p, (_sc, _metric, bars) in enumerate(panels):
        top = max(b[1] for b in bars) or 1
        for i, (name, med, _lo, _hi) in enumerate(bars):
            c = COLORS.get(name, "#999999")
            rgb = (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16))
            y = p * row_h + 5 + i * (bar_h + 2)
            rect(10, y, 10 + int((w - 20) * med / top), y + bar_h, rgb)
        rect(0, (p + 1) * row_h - 1, w, (p + 1) * row_h, (200, 200, 200))
    raw = b"".join(b"\x00" + bytes(img[y * w * 3 : (y + 1) * w * 3]) for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


_LINE = re.compile(r" \((.*):\d+\)$")


def digest_pyspy(raw_file: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    self_c: dict[str, int] = defaultdict(int)
    incl: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(r" (\1)", f.strip()) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "no samples"
    out = [f"{total} samples", "", "self%   function (file:line)"]
    for f, n in sorted(self_c.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * n / total:5.1f}   {f}")
    out += ["", "incl%   function"]
    for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * n / total:5.1f}   {f}")
    return "\n".join(out)
