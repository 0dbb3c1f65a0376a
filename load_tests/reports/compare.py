"""report.md and compare.png of ``make compare`` (load_tests/runs/compare.py), from its typed
``CompareRun`` only. ``python -m load_tests.reports.compare DIR`` re-renders DIR's report."""

from __future__ import annotations

import sys
from pathlib import Path

from load_tests import results
from load_tests.reports.plots import PLAIN, save


def _ci(e: results.Estimate | None, spec: str = ".2f", unit: str = "") -> str:
    if e is None:
        return "—"
    if e.estimate is None:
        return f"n/a ({e.reason})" if e.reason else "n/a"
    if e.ci95 is None:
        return f"{e.estimate:{spec}}{unit} (no interval)"
    mark = results.UNINFORMATIVE if e.uninformative else ""
    return f"{e.estimate:{spec}}{unit} ({e.ci95[0]:{spec}}–{e.ci95[1]:{spec}}{mark})"


def _name(target: str, run: results.CompareRun) -> str:
    standin = run.environment.tfserving.startswith("stand")
    return f"{target} (stand-in)" if target == "tfserving" and standin else target


def plot(run: results.CompareRun, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    names = list(dict.fromkeys(c.target for c in run.cells))
    for ax, key, title in ((axes[0], "p50_ms", "p50"), (axes[1], "p99_ms", "p99")):
        for i, name in enumerate(names):
            cells = [c for c in run.cells if c.target == name and getattr(c, key).estimate is not None]
            floor = name.startswith("floor-")
            x = [c.rate * (1 + 0.02 * (i - len(names) / 2)) for c in cells]  # side by side, not on top
            y = [getattr(c, key).estimate for c in cells]
            lo = [y_ - (getattr(c, key).ci95 or (y_, y_))[0] for c, y_ in zip(cells, y, strict=True)]
            hi = [(getattr(c, key).ci95 or (y_, y_))[1] - y_ for c, y_ in zip(cells, y, strict=True)]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, linestyle="--" if floor else "-",
                        label=_name(name, run), alpha=0.6 if floor else 1.0)  # fmt: skip
            for p in run.points:  # every point, the invalid ones hollow
                if p.target == name and getattr(p, key) is not None:
                    ax.scatter(p.rate * (1 + 0.02 * (i - len(names) / 2)), getattr(p, key), s=8,
                               facecolors="none" if not p.valid else "grey", edgecolors="grey", alpha=0.5)  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(PLAIN)
        ax.set_xticks(run.rates)
        ax.set_xlabel("offered rate (req/s, open loop)")
        ax.set_ylabel(f"{title} latency from the intended send (ms)")
        ax.set_title(f"{title}: mean over the blocks with a valid point\n(bars: 95 % interval, where there is one)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save(fig, path)
    return path


def write(run: results.CompareRun, out: Path) -> Path:
    png = plot(run, out / "compare.png")
    env = run.environment
    tree = f"commit `{run.source.commit[:12]}`" + (
        f" with {len(run.source.changes)} uncommitted change(s): a development run"
        if run.source.dirty
        else ", unchanged"
    )
    a, b = run.ratios[0].a, run.ratios[0].b
    lines = [
        f"# {_name(a, run)} vs {_name(b, run)}: a quick comparison (`make compare`)",
        "",
        *(f"**{line}**" if line.startswith("VERDICT") else f"- {line.strip()}" for line in run.verdict),
        "",
        f"Machine: {env.cpu}, {env.cores} cores, shared (load average {' '.join(env.load_avg_before)} before, "
        f"{' '.join(env.load_avg_after) or '?'} after: compare within this report only); {tree}; "
        f"TF Serving: {env.tfserving}. Started {run.started}, {run.seconds / 60:.1f} min.",
        "",
        f"Method: {run.blocks} blocks, each visiting every target at {', '.join(f'{r:g}' for r in run.rates)} req/s "
        "in a shuffled order with one seed per block (the same Poisson arrivals for every target); latency from each "
        f"request's intended send time; a point is {run.point.warmup_s:g} s of warm-up, then {run.point.windows} "
        f"windows of ≥ {run.point.min_window_s:g} s holding ≥ {run.point.min_samples} requests. Figures are the mean "
        "over the blocks' valid points with a 95 % interval bootstrapped over whole blocks; ratios are paired within "
        "blocks, and two figures differ only when the whole interval of their ratio lies on one side of 1. The guard "
        f"invalidates a point when the generator's send lag moved its p99 by more than "
        f"{run.guard.max_lag_impact_share_of_slo:.0%} of {run.slo_ms:g} ms, when the generator took more than "
        f"{run.guard.max_generator_cpu_share:.0%} of a core, or when the machine had less than "
        f"{run.guard.min_machine_idle:.0%} idle. No SLO is judged here: `make load` estimates capacity.",
        "",
        "Reading the intervals: an interval marked *uninformative* reached 0 (its blocks disagreed by more than "
        "the figure itself; on a shared machine, typically one slow block): read its figure as a magnitude only, "
        "and a ratio so wide as \"too noisy to tell\". A target's figure is the mean over every block where it had "
        "a valid point; a ratio uses only the blocks where both had one, so it need not equal the quotient of the "
        "two figures beside it.",
        "",
        "| rate (req/s) | target | valid points | p50 (ms) | p99 (ms) | p50 / floor | p99 / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in run.cells:
        lines.append(
            f"| {c.rate:,.0f} | {_name(c.target, run)} | {c.valid} of {c.points} | {_ci(c.p50_ms)} | {_ci(c.p99_ms)} | "
            f"{_ci(c.p50_over_floor, '.2f', '×')} | {_ci(c.p99_over_floor, '.2f', '×')} |"
        )
    lines += [
        "",
        f"| rate (req/s) | p50 {a}/{b} | p99 {a}/{b} | verdict |",
        "|---|---|---|---|",
        *(f"| {r.rate:,.0f} | {_ci(r.p50, '.2f', '×')} | {_ci(r.p99, '.2f', '×')} | {r.verdict} |" for r in run.ratios),
        "",
        f"![p50 and p99 per rate]({png.name})",
        "",
        "Floors: the same model in-process behind the leanest server, batching like the server it stands beside "
        "(load_tests/targets.py). compare.json holds every point (load_tests/results.py `CompareRun`).",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    folder = Path((argv or sys.argv[1:])[0])
    print(write(results.read_compare(folder), folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
