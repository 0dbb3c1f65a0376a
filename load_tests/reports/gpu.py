"""The GPU report: served equals CPU, the in-process GPU/CPU table by batch size (and from which batch
the GPU wins), each served target at fixed open-loop rates beside its floor, and the capacity
search, with the machine and what ran and what did not.

``python -m load_tests.reports.gpu DIR`` renders DIR/report.md and DIR/inproc.png from the data
files in DIR (what ``make gpu-report`` writes there, or the data copied from an earlier run):

- ``provenance.json``: machine, GPU, driver, CUDA, versions, date, what ran and what did not;
- ``gpu_check.json``: per model, the largest difference served vs in-process on the CPU;
- ``inproc.json``: ``{"median_us_per_call": {"<runtime> <device> b<rows>": µs}}``;
- ``points.jsonl``: one fixed-rate open-loop point per line (url or target, rate, p50/p99 ms, send lag);
- optionally ``capacity.log`` / ``capacity-*.log`` (the capacity runner's output) and any other files.
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

from load_tests.reports.plots import PLAIN

KEY = re.compile(r"^(?P<runtime>\S+) (?P<device>\S+) b(?P<rows>\d+)$")


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
    for needle, name in (("backend=torchserve", "gateway → TorchServe"), ("/predictions/mnist_onnx", "TorchServe mnist_onnx"),
                         ("/predictions/mnist", "TorchServe mnist"), ("/predict", "floor (lean server)")):  # fmt: skip
        if needle in url:
            return name
    return url


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


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
    check_path = folder / "gpu_check.json"
    if check_path.exists():
        check = orjson.loads(check_path.read_bytes())
        lines += ["## Served equals the CPU", "", "| model | served on | max abs difference vs in-process CPU | accuracy |",
                  "|---|---|---|---|"]  # fmt: skip
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
        wins = gpu_wins_from(table)
        lines += [""]
        for name, (loses_at, wins_at) in wins.items():
            if wins_at is None:
                lines.append(f"- **{name}** never beats the CPU runtimes in this table.")
            else:
                since = f"; at {loses_at} rows it still loses, so the crossover lies between" if loses_at else ""
                lines.append(f"- **{name}** beats every CPU runtime at **{wins_at} rows** per forward pass{since}.")
        lines += [
            "",
            "For single rows of this 784-128-10 network one CPU core is faster than the GPU; what a GPU buys is "
            "throughput once requests are batched into large forward passes.",
            "",
            f"![{png}]({png})",
            "",
        ]
    points_path = folder / "points.jsonl"
    if points_path.exists():
        points = [orjson.loads(ln) for ln in points_path.read_text().splitlines() if ln.strip()]
        rates = sorted({float(p["rate"]) for p in points})
        lines += [
            "## Served, at fixed open-loop rates",
            "",
            "Poisson arrivals, latency from the intended send time, every answer checked. p50 / p99 ms:",
            "",
            "| target | " + " | ".join(f"{r:,.0f} req/s" for r in rates) + " | send lag p99 ms |",
            "|---|" + "---|" * (len(rates) + 1),
        ]
        for name in dict.fromkeys(_target(p) for p in points):
            row = {float(p["rate"]): p for p in points if _target(p) == name}
            cells = [f"{_fmt(row[r]['p50_ms'])} / {_fmt(row[r]['p99_ms'])}" if r in row else "–" for r in rates]
            lags = ", ".join(_fmt(p.get("send_lag_p99_ms")) for p in row.values())
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {lags} |")
        if prov.get("points_note"):
            lines += ["", prov["points_note"]]
        lines.append("")
    logs = sorted(folder.glob("capacity*.log"))
    if logs:
        lines += ["## Capacity search (the project's runner)", ""]
        for log in logs:
            found = re.findall(r"^\s+(\S+): QPS@SLO ([\d,]+) req/s", log.read_text(), re.M)
            lines.append(f"- `{log.name}`: " + (", ".join(f"{t} {q} req/s" for t, q in found) or "no QPS@SLO found"))
        if prov.get("capacity_note"):
            lines += ["", prov["capacity_note"]]
        lines.append("")
    if prov.get("findings"):
        lines += ["## Findings", "", *[f"- {f}" for f in prov["findings"]], ""]
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
