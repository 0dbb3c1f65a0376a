"""The GPU report: served equals CPU, the in-process GPU/CPU table by batch size (and from which batch
the GPU wins), each served target at fixed open-loop rates beside its floor, the capacity runs, and
findings computed from all of it, with the machine and what ran and what did not. Every figure in
it comes from a data file in the folder; only the provenance (what ran, on what) is written by hand.

``python -m load_tests.reports.gpu DIR`` renders DIR/report.md and DIR/inproc.png from the data
files in DIR (what ``make gpu-report`` writes there, or the data copied from an earlier run):

- ``provenance.json``: machine, GPU, driver, CUDA, versions, date, what ran and what did not, and
  notes on how data was collected (``points_note``);
- ``gpu_check.json``: per model, the largest difference served vs in-process on the CPU;
- ``inproc.json``: ``{"median_us_per_call": {"<runtime> <device> b<rows>": µs}}``;
- ``capacity/results.json``: a capacity run of the block runner (load_tests/results.py, typed):
  QPS@SLO with intervals, the ratios to the floors, and its points at the fixed rate;
- or, from runs before the typed results: ``points.jsonl`` (one fixed-rate open-loop point per line:
  url or target, rate, p50/p99 ms, send lag) and ``capacity*.log`` (the old runner's output, whose
  point lines are read back);
- optionally ``torchserve-access-log-ms-histogram.txt`` (TorchServe's server-side ms per request, and
  its log lines per request) and any other files.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson

from load_tests import results
from load_tests.reports.plots import PLAIN

KEY = re.compile(r"^(?P<runtime>\S+) (?P<device>\S+) b(?P<rows>\d+)$")
# A point line of the bisection runner's log (before the typed results):
#     torchserve     500 req/s  p50    4.45  p99     8.77 ms  FAIL (unstable)  invalid: send lag p99 ...
LOG_POINT = re.compile(
    r"^\s+(?P<target>\S+)\s+(?P<rate>[\d.]+) req/s\s+p50\s+(?P<p50>[\d.]+|nan|inf)\s+p99\s+(?P<p99>[\d.]+|nan|inf) ms"
    r"\s+(?P<verdict>pass|FAIL)(?P<unstable> \(unstable\))?(?:\s+invalid: (?P<invalid>.*))?$"
)
LOG_SLO = re.compile(r"of the ([\d.]+) ms SLO|slo(\d+)")


def inproc_table(medians: dict[str, float]) -> dict[tuple[str, str], dict[int, float]]:
    """(runtime, device) -> rows -> median µs per call."""
    table: dict[tuple[str, str], dict[int, float]] = {}
    for key, us in medians.items():
        m = KEY.match(key)
        if m:
            table.setdefault((m["runtime"], m["device"]), {})[int(m["rows"])] = float(us)
    return table


def gpu_wins_from(table: dict[tuple[str, str], dict[int, float]]) -> dict[str, tuple[int | None, int | None]]:
    """For each GPU runtime: (the largest measured batch at which it loses to some CPU runtime below its
    first win, the smallest at which it beats every CPU runtime); None where the table has none."""
    out: dict[str, tuple[int | None, int | None]] = {}
    cpu = {k: v for k, v in table.items() if k[1] == "cpu"}
    for (runtime, device), by_rows in table.items():
        if device == "cpu":
            continue
        wins = [
            rows
            for rows, us in sorted(by_rows.items())
            if all(rows in c and us < c[rows] for c in cpu.values()) and cpu
        ]
        first = wins[0] if wins else None
        losses = [r for r in sorted(by_rows) if first is None or r < first]
        out[f"{runtime} {device}"] = (losses[-1] if losses else None, first)
    return out


def plot_inproc(table: dict[tuple[str, str], dict[int, float]], out: Path) -> str:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (runtime, device), by_rows in sorted(table.items()):
        rows = sorted(by_rows)
        ax.plot(rows, [by_rows[r] for r in rows], "o-" if device != "cpu" else "s--", label=f"{runtime} on {device}")
    ax.set(xscale="log", yscale="log", xlabel="rows per forward pass", ylabel="median µs per call (log)",
           title="In-process model time: GPU vs one CPU core")  # fmt: skip
    ax.xaxis.set_major_formatter(PLAIN)
    ax.yaxis.set_major_formatter(PLAIN)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "inproc.png", dpi=90)
    plt.close(fig)
    return "inproc.png"


def _target(point: dict[str, Any]) -> str:
    if "target" in point:
        return str(point["target"])
    url = str(point.get("url", ""))
    for needle, name in (
        ("backend=torchserve", "gateway → TorchServe"),
        ("/predictions/mnist_onnx", "TorchServe mnist_onnx"),
        ("/predictions/mnist", "TorchServe mnist"),
        ("/predict", "floor (lean server)"),
    ):
        if needle in url:
            return name
    return url


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def log_points(text: str) -> list[dict[str, Any]]:
    """The point lines of a capacity log of the bisection runner, parsed."""
    out = []
    for line in text.splitlines():
        m = LOG_POINT.match(line)
        if m:
            out.append({
                "target": m["target"], "rate": float(m["rate"]), "p50_ms": float(m["p50"]), "p99_ms": float(m["p99"]),
                "passes": m["verdict"] == "pass", "stable": not m["unstable"], "invalid": m["invalid"] or "",
            })  # fmt: skip
    return out


def log_slo(name: str, text: str) -> float | None:
    m = LOG_SLO.search(text) or LOG_SLO.search(name)
    return float(m[1] or m[2]) if m else None


def log_summary(name: str, text: str) -> str:
    """What a capacity log's points say, computed: how many met the SLO, the lowest p99 and where."""
    points, slo = log_points(text), log_slo(name, text)
    if not points:
        return f"`{name}`: no point lines"
    passed = [p for p in points if p["passes"]]
    best = min(points, key=lambda p: p["p99_ms"])
    found = re.findall(r"^\s+\S+: QPS@SLO ([\d,]+) req/s", text, re.M)
    invalid = sum(bool(p["invalid"]) for p in points)
    rates = sorted(p["rate"] for p in points)
    head = f"`{name}` (p99 ≤ {_fmt(slo, 'g')} ms): " if slo else f"`{name}`: "
    text_ = (
        f"{len(passed)} of {len(points)} points met the SLO, at {rates[0]:,.0f}–{rates[-1]:,.0f} req/s; the lowest "
        f"p99 was {best['p99_ms']:.2f} ms (at {best['rate']:,.0f} req/s); "
        f"p50 {min(p['p50_ms'] for p in points):.2f}–{max(p['p50_ms'] for p in points):.2f} ms"
    )
    if passed:
        text_ += f"; the highest passing rate {max(p['rate'] for p in passed):,.0f} req/s"
    text_ += (
        f"; QPS@SLO per repeat: {', '.join(found) or 'none reported'}; {invalid} of {len(points)} flagged by its guard"
    )
    lags = [float(m[1]) for p in points if (m := re.search(r"send lag p99 ([\d.]+) ms", p["invalid"]))]
    if lags and len(lags) == len(points):
        text_ += (
            f" (send-lag p99 {min(lags):.2f}–{max(lags):.2f} ms on every point: these points bound the server with "
            "that generator, not the server alone"
        )
        if slo and not passed:
            margin = min(p["p99_ms"] - lag for p, lag in zip(points, lags, strict=True))
            verdict = (
                "so the lag alone cannot explain the misses"
                if margin > slo
                else "within the SLO: the log cannot rule out that the server itself met it"
            )
            text_ += f"; the lowest p99 less its point's send-lag p99 is {margin:.2f} ms, {verdict}"
        text_ += ")"
    return head + text_ + "."


def _log_table(points: list[dict[str, Any]]) -> list[str]:
    rows = ["| rate req/s | p50 ms | p99 ms | verdict | guard |", "|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: p["rate"]):
        rows.append(
            f"| {p['rate']:,.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | {'pass' if p['passes'] else 'FAIL'}"
            f"{'' if p['stable'] else ' (unstable)'} | {p['invalid'] or 'valid'} |"
        )
    return rows


def access_log(folder: Path) -> dict[str, float] | None:
    """TorchServe's server-side ms per request (the access log's histogram) and its log lines per request."""
    path = folder / "torchserve-access-log-ms-histogram.txt"
    if not path.exists():
        return None
    counts: dict[int, int] = {}
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^(\d+) ms: (\d+)$", line)
        if m:
            counts[int(m[1])] = int(m[2])
        m2 = re.match(r"^ts_log.log lines: (\d+) for (\d+) requests", line)
        if m2:
            out["log_lines"], out["log_requests"] = float(m2[1]), float(m2[2])
    total = sum(counts.values())
    if total:
        seen = 0
        for ms in sorted(counts):
            seen += counts[ms]
            if seen * 2 >= total:
                out["median_ms"] = float(ms)
                break
        out["requests"] = float(total)
    return out


def fixed_rate_points(folder: Path) -> list[dict[str, Any]]:
    """The fixed-rate points: from a typed capacity run (mean over its blocks at the fixed rate per
    target), else points.jsonl."""
    typed = _typed(folder)
    if typed is not None:
        out = []
        for name, t in typed.targets.items():
            if t.p50_at_fixed_ms is None:
                continue
            lags = [
                p.guard.send_lag_p99_ms
                for p in typed.points
                if p.target == name
                and p.valid
                and math.isclose(p.rate, typed.method.fixed_rate)
                and p.guard.send_lag_p99_ms is not None
            ]
            out.append({"target": name, "rate": typed.method.fixed_rate, "p50_ms": t.p50_at_fixed_ms,
                        "p99_ms": t.p99_at_fixed_ms, "send_lag_p99_ms": max(lags, default=None)})  # fmt: skip
        return out
    path = folder / "points.jsonl"
    return [orjson.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def _typed(folder: Path) -> results.CapacityRun | None:
    path = folder / "capacity"
    if not (path / "results.json").exists():
        return None
    return results.read(path)


def findings(folder: Path) -> list[str]:
    """The report's findings, each computed from a data file in the folder."""
    out = []
    check_path = folder / "gpu_check.json"
    if check_path.exists():
        check = {m: c for m, c in orjson.loads(check_path.read_bytes()).items() if isinstance(c, dict)}
        worst = max((c["max_abs_diff_vs_cpu_inprocess"] for c in check.values()), default=None)
        if worst is not None:
            out.append(
                f"Served equals the in-process CPU answer within {worst:.1e} for every model ("
                + ", ".join(f"{m} {c['max_abs_diff_vs_cpu_inprocess']:.1e}" for m, c in check.items())
                + "; gpu_check.json)."
            )
    inproc_path = folder / "inproc.json"
    if inproc_path.exists():
        table = inproc_table(orjson.loads(inproc_path.read_bytes())["median_us_per_call"])
        for name, (loses_at, wins_at) in gpu_wins_from(table).items():
            if wins_at is None:
                out.append(f"{name} never beats the CPU runtimes at the batch sizes measured (inproc.json).")
            else:
                between = f"; at {loses_at} rows it still loses, so the crossover lies between" if loses_at else ""
                out.append(
                    f"{name} beats every CPU runtime from {wins_at} rows per forward pass{between} (inproc.json)."
                )
    typed = _typed(folder)
    if typed is None:  # the runs before typed results: one floor, the TorchScript model (points.jsonl)
        points = fixed_rate_points(folder)
        floor = {p["rate"]: p for p in points if _target(p).startswith("floor")}
        for name in dict.fromkeys(_target(p) for p in points):
            if name.startswith("floor") or "onnx" in name:  # the floor is TorchScript: only its model compares
                continue
            ratios = [
                (p["rate"], p["p50_ms"] / floor[p["rate"]]["p50_ms"])
                for p in points
                if _target(p) == name and p["rate"] in floor and floor[p["rate"]]["p50_ms"]
            ]
            if ratios:
                lo, hi = min(r for _, r in ratios), max(r for _, r in ratios)
                out.append(
                    f"{name}'s p50 is {lo:.1f}–{hi:.1f}× the floor's (the same TorchScript on the same GPU behind the "
                    f"leanest server) at {', '.join(f'{r:,.0f}' for r, _ in ratios)} req/s (points.jsonl)."
                )
    else:
        for name, t in typed.targets.items():
            r = t.ratios
            if r is not None and r.p50.estimate is not None:
                ci = f", 95 % CI {r.p50.ci95[0]:.2f}–{r.p50.ci95[1]:.2f}" if r.p50.ci95 else ""
                out.append(f"{name}'s p50 is {r.p50.estimate:.2f}× its floor's ({r.floor}{ci}) at "
                           f"{r.rate:,.0f} req/s (capacity/results.json).")  # fmt: skip
    for log in sorted(folder.glob("capacity*.log")):
        out.append(log_summary(log.name, log.read_text()))
    if typed is not None:
        for name, t in typed.targets.items():
            q = t.qps_at_slo
            if q.estimate is not None:
                ci = f", 95 % CI {q.ci95[0]:,.0f}–{q.ci95[1]:,.0f}" if q.ci95 else f" ({q.reason})"
                out.append(f"{name}: QPS@SLO {q.estimate:,.0f} req/s{ci} at p99 ≤ {typed.method.slo_ms:g} ms "
                           f"({t.points_valid} of {t.points_total} points valid).")  # fmt: skip
            else:
                out.append(f"{name}: QPS@SLO not estimable at p99 ≤ {typed.method.slo_ms:g} ms ({q.reason}).")
    acc = access_log(folder)
    if acc and "median_ms" in acc:
        text = (f"TorchServe's access log puts a median {acc['median_ms']:.0f} ms server-side per request "
                f"({acc['requests']:,.0f} requests)")  # fmt: skip
        if "log_lines" in acc:
            text += (f"; it wrote {acc['log_lines'] / acc['log_requests']:.1f} log lines per request "
                     f"({acc['log_lines']:,.0f} for {acc['log_requests']:,.0f})")  # fmt: skip
        out.append(text + " (torchserve-access-log-ms-histogram.txt).")
    return out


def write(folder: Path) -> Path:
    prov = orjson.loads((folder / "provenance.json").read_bytes())
    lines = [
        f"# GPU report: {prov['gpu']} ({prov['date']})",
        "",
        f"**Machine.** {prov['gpu']}, driver {prov['driver']}, CUDA {prov['cuda']}; {prov['machine']}. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in prov['versions'].items())}. Project commit {prov['commit']}.",
        "",
        f"**What ran.** {prov['ran']}",
        "",
        f"**What did not.** {prov['did_not_run']}",
        "",
    ]
    found = findings(folder)
    if found:
        lines += ["## Findings (computed from the data files below)", "", *[f"- {f}" for f in found], ""]
    check_path = folder / "gpu_check.json"
    if check_path.exists():
        check = orjson.loads(check_path.read_bytes())
        lines += [
            "## Served equals the CPU",
            "",
            "| model | served on | max abs difference vs in-process CPU | accuracy |",
            "|---|---|---|---|",
        ]
        for model, c in check.items():
            if isinstance(c, dict) and "max_abs_diff_vs_cpu_inprocess" in c:
                lines.append(
                    f"| {model} | {c.get('device', prov.get('devices', {}).get(model, '?'))} | "
                    f"{c['max_abs_diff_vs_cpu_inprocess']:.1e} | {_fmt(c.get('accuracy_64'), '.3f')} (64 digits) |"
                )
        lines.append("")
    inproc_path = folder / "inproc.json"
    if inproc_path.exists():
        table = inproc_table(orjson.loads(inproc_path.read_bytes())["median_us_per_call"])
        sizes = sorted({r for by_rows in table.values() for r in by_rows})
        png = plot_inproc(table, folder)
        lines += [
            "## In-process: when does the GPU pay?",
            "",
            "Median µs per call of the model alone (the GPU figures include the copies in and out), one thread "
            "on the CPU:",
            "",
            "| runtime on device | " + " | ".join(f"batch {s}" for s in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for (runtime, device), by_rows in sorted(table.items()):
            lines.append(f"| {runtime} on {device} | " + " | ".join(_fmt(by_rows.get(s), ",.0f") for s in sizes) + " |")
        fastest_cpu = min((by[min(by)] for (_, d), by in table.items() if d == "cpu" and by), default=None)
        fastest_gpu = min((by[min(by)] for (_, d), by in table.items() if d != "cpu" and by), default=None)
        lines += [""]
        if fastest_cpu is not None and fastest_gpu is not None:
            faster = "the CPU" if fastest_cpu < fastest_gpu else "the GPU"
            lines += [
                f"At {min(sizes)} row(s) per call the fastest CPU runtime takes {fastest_cpu:,.0f} µs and the GPU "
                f"{fastest_gpu:,.0f} µs: {faster} is faster for single rows of this network.",
                "",
            ]
        lines += [f"![{png}]({png})", ""]
    points = fixed_rate_points(folder)
    if points:
        rates = sorted({float(p["rate"]) for p in points})
        lines += [
            "## Served, at fixed open-loop rates",
            "",
            "Poisson arrivals, latency from the intended send time, every answer checked. p50 / p99 ms "
            "(and p99 / p50: the tail's weight):",
            "",
            "| target | " + " | ".join(f"{r:,.0f} req/s" for r in rates) + " | send lag p99 ms |",
            "|---|" + "---|" * (len(rates) + 1),
        ]
        for name in dict.fromkeys(_target(p) for p in points):
            row = {float(p["rate"]): p for p in points if _target(p) == name}
            cells = [
                f"{_fmt(row[r]['p50_ms'])} / {_fmt(row[r]['p99_ms'])} ({row[r]['p99_ms'] / row[r]['p50_ms']:.0f}×)"
                if r in row and row[r].get("p99_ms") and row[r].get("p50_ms") else "–"
                for r in rates
            ]  # fmt: skip
            lags = ", ".join(_fmt(p.get("send_lag_p99_ms")) for p in row.values())
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {lags} |")
        if prov.get("points_note"):
            lines += ["", prov["points_note"]]
        lines.append("")
    typed = _typed(folder)
    if typed is not None:
        from load_tests.reports.capacity import headline

        lines += [
            "## Capacity (the project's block runner: capacity/report.md)",
            "",
            headline(typed),
            "",
            "| target | QPS@SLO | 95 % CI | valid points | QPS@SLO / floor (95 % CI) |",
            "|---|---|---|---|---|",
        ]
        for name, t in typed.targets.items():
            q, r = t.qps_at_slo, t.ratios
            ratio = (f"{r.qps_at_slo.estimate:.2f}× ({r.qps_at_slo.ci95[0]:.2f}–{r.qps_at_slo.ci95[1]:.2f})"
                     if r and r.qps_at_slo.estimate is not None and r.qps_at_slo.ci95 else "–")  # fmt: skip
            ci = f"{q.ci95[0]:,.0f}–{q.ci95[1]:,.0f}" if q.ci95 else f"– ({q.reason})"
            lines.append(
                f"| {name} | {_fmt(q.estimate, ',.0f')} | {ci} | {t.points_valid} of {t.points_total} | {ratio} |"
            )
        lines.append("")
    logs = sorted(folder.glob("capacity*.log"))
    if logs:
        lines += ["## Capacity search (the bisection runner of the time: every point of its logs)", ""]
        for log in logs:
            text = log.read_text()
            lines += [f"**{log_summary(log.name, text)}**", "", *_log_table(log_points(text)), ""]
    lines += ["Data files: " + ", ".join(f"[{p.name}]({p.name})" for p in sorted(folder.iterdir())
                                         if p.name not in ("report.md",) and p.is_file())]  # fmt: skip
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    print(write(p.parse_args(argv).folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
