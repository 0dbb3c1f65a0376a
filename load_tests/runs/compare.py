"""``python -m load_tests.runs.compare`` (``make compare``): the two servers side by side in minutes,
each beside its floor, with a verdict — the quick look that Triton's perf_analyzer gives, on the
capacity harness (the same stack start-up, open-loop points, guard and typed records as ``make
load``).

Design: ``--blocks`` blocks; each visits every target and its floor at every rate of ``--rates``,
in an order shuffled per block, with one seed per block (the same Poisson arrivals for every target
of a block). Per target and rate: p50 and p99 as the mean over the blocks' valid points, with a 95 %
interval bootstrapped over whole blocks (load_tests/estimate.py); the two servers' ratio and each
server's ratio to its floor are paired within blocks. Two figures *differ* only when the whole
interval of their ratio lies on one side of 1. Points the guard invalidated (the generator moved
the p99, or it or the machine ran out of CPU) are left out and counted in the verdict.

It does not estimate capacity (no SLO is judged: ``make load`` does that); the rates default to
loads both servers hold on 2 cores. Writes reports/compare-<time>/: compare.json (the typed
``CompareRun``), report.md, compare.png; the verdict is also the command's last lines.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from load_tests import blocks, estimate, results, stats
from load_tests.contracts import SLO_MS
from load_tests.measure.point import PointConfig, priority_of, record, run_point
from load_tests.reports import compare as report
from load_tests.runs import harness
from load_tests.runs.stack import floors_of
from load_tests.targets import BY_NAME, Target

# Tuning constants (each also a command-line option). 2 servers + 2 floors x 3 rates x 4 blocks =
# 48 points of ~4 s each (Locust's start-up is most of it) plus ~1 min to start the stack: ~4.5 min
# on 2 cores, inside the 5 min a quick look may take.
TARGETS = ("tfserving", "torchserve")
RATES = (50.0, 150.0, 300.0)  # req/s: well below either server's knee on 2 cores (make load: 630-980)
# One more than the fewest that give an interval: a block whose point the guard invalidates (the
# send lag of an idle VM waking up, at 50 req/s) leaves the rate still judged.
BLOCKS = estimate.MIN_BLOCKS + 1
# A point: 0.5 s warm-up, 2 windows of >= 1 s and together >= 300 requests (a p99 on >= 3 above it).
WARMUP_S = 0.5
MIN_WINDOW_S = 1.0
WINDOWS = 2
MIN_SAMPLES = 300


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--targets", default=",".join(TARGETS), help="two targets to compare (default: %(default)s)")
    p.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=list(RATES),
                   help="offered Poisson rates, req/s (default: %(default)s)")  # fmt: skip
    p.add_argument("--blocks", type=int, default=BLOCKS, help=f"repeats of every point (>= {estimate.MIN_BLOCKS})")
    p.add_argument("--no-floors", dest="floors", action="store_false", help="do not measure the floors")
    p.add_argument("--slo-ms", type=float, default=SLO_MS, help="the guard's reference (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=WARMUP_S)
    p.add_argument("--min-window-s", type=float, default=MIN_WINDOW_S)
    p.add_argument("--windows", type=int, default=WINDOWS)
    p.add_argument("--min-samples", type=int, default=MIN_SAMPLES)
    p.add_argument("--resamples", type=int, default=estimate.RESAMPLES)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/compare-<time>)")
    args = p.parse_args(argv)
    if len(args.targets.split(",")) != 2:
        p.error("--targets names exactly two targets")
    if args.blocks < estimate.MIN_BLOCKS:
        p.error(f"--blocks must be at least {estimate.MIN_BLOCKS}: fewer give no interval")
    return args


def point_config(args: argparse.Namespace) -> PointConfig:
    return PointConfig(slo_ms=args.slo_ms, warmup_s=args.warmup, min_window_s=args.min_window_s,
                       max_windows=args.windows, early_stop=False, min_samples=args.min_samples)  # fmt: skip


# ---- the figures, from the points (no I/O: tests/load_tests/runs/test_compare.py) ------------------


def _by_block(points: list[results.PointRecord], target: str, rate: float, key: str) -> dict[int, float]:
    rows: dict[int, list[float]] = {}
    for p in points:
        v = getattr(p, key)
        if p.target == target and math.isclose(p.rate, rate) and p.valid and v is not None and math.isfinite(v):
            rows.setdefault(p.block, []).append(v)
    return {b: float(np.mean(v)) for b, v in rows.items()}


def _est(i: estimate.Interval) -> results.Estimate:
    ci = (i.low, i.high) if i.low is not None and i.high is not None else None
    return results.Estimate(estimate=i.estimate, ci95=ci, reason=i.reason)


def _mean_interval(per_block: dict[int, float], resamples: int, seed: int) -> results.Estimate:
    return _est(estimate.block_interval(
        sorted(per_block), lambda b: float(np.mean([per_block[int(i)] for i in b])), resamples=resamples, seed=seed,
        unknown="no valid point",
    ))  # fmt: skip


def _ratio(
    points: list[results.PointRecord], a: str, b: str, rate: float, key: str, resamples: int, seed: int
) -> results.Estimate:
    return _est(
        estimate.paired_ratio_interval(
            _by_block(points, a, rate, key), _by_block(points, b, rate, key), resamples=resamples, seed=seed
        )
    )


def latency_verdict(a: str, b: str, r: results.Estimate) -> str:
    """Lower latency is better: a is slower only when the whole interval of a/b lies above 1."""
    if r.estimate is None or r.ci95 is None:
        return "not estimable"
    if r.uninformative:
        return "too noisy to tell"
    if r.ci95[0] > 1:
        return f"{a} slower"
    if r.ci95[1] < 1:
        return f"{b} slower"
    return "indistinguishable"


def summarise(
    points: list[results.PointRecord], pair: tuple[str, str], floors: dict[str, str], rates: list[float],
    *, resamples: int = estimate.RESAMPLES, seed: int = 1,
) -> tuple[list[results.CompareCell], list[results.CompareRatio]]:  # fmt: skip
    """Every target's cell at every rate, and the pair's ratio per rate."""
    cells = []
    names = [*pair, *[f for f in dict.fromkeys(floors.values()) if f not in pair]]
    for rate in rates:
        for name in names:
            mine = [p for p in points if p.target == name and math.isclose(p.rate, rate)]
            floor = floors.get(name)
            cells.append(
                results.CompareCell(
                    target=name, rate=rate, points=len(mine), valid=sum(p.valid for p in mine),
                    p50_ms=_mean_interval(_by_block(points, name, rate, "p50_ms"), resamples, seed),
                    p99_ms=_mean_interval(_by_block(points, name, rate, "p99_ms"), resamples, seed),
                    floor=floor,
                    p50_over_floor=_ratio(points, name, floor, rate, "p50_ms", resamples, seed) if floor else None,
                    p99_over_floor=_ratio(points, name, floor, rate, "p99_ms", resamples, seed) if floor else None,
                )
            )  # fmt: skip
    ratios = []
    a, b = pair
    for rate in rates:
        p50 = _ratio(points, a, b, rate, "p50_ms", resamples, seed)
        p99 = _ratio(points, a, b, rate, "p99_ms", resamples, seed)
        verdict = f"p50: {latency_verdict(a, b, p50)}; p99: {latency_verdict(a, b, p99)}"
        ratios.append(results.CompareRatio(rate=rate, a=a, b=b, p50=p50, p99=p99, verdict=verdict))
    return cells, ratios


def _fig(e: results.Estimate, spec: str = ".2f", unit: str = "") -> str:
    if e.estimate is None:
        return "n/a"
    ci = f" ({e.ci95[0]:{spec}}–{e.ci95[1]:{spec}}{results.UNINFORMATIVE if e.uninformative else ''})" if e.ci95 else \
        " (no interval)"  # fmt: skip
    return f"{e.estimate:{spec}}{unit}{ci}"


def verdict_lines(
    points: list[results.PointRecord], cells: list[results.CompareCell], ratios: list[results.CompareRatio]
) -> list[str]:
    """The command's last lines: whether the run is valid, then what it found, per rate."""
    invalid = [p for p in points if not p.valid]
    reasons: dict[str, int] = {}
    for p in invalid:
        for reason in p.guard.reasons:
            key = next((rule for rule in stats.GUARD_RULES if reason.startswith(rule)), reason)
            reasons[key] = reasons.get(key, 0) + 1
    lines = []
    if not points:
        return ["VERDICT: nothing was measured"]
    if invalid:
        why = "; ".join(f"{k} ({n})" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"VERDICT: {len(points) - len(invalid)} of {len(points)} points valid; left out: {why}")
    else:
        lines.append(f"VERDICT: all {len(points)} points valid (the generator's send lag moved no p99 by more "
                     "than its limit, and it and the machine had CPU to spare)")  # fmt: skip
    cell = {(c.target, c.rate): c for c in cells}
    for r in ratios:
        ca, cb = cell[(r.a, r.rate)], cell[(r.b, r.rate)]
        lines.append(
            f"  {r.rate:,.0f} req/s: {r.a} p50 {_fig(ca.p50_ms)} p99 {_fig(ca.p99_ms)} ms; "
            f"{r.b} p50 {_fig(cb.p50_ms)} p99 {_fig(cb.p99_ms)} ms; {r.a}/{r.b} p50 {_fig(r.p50, '.2f', '×')}, "
            f"p99 {_fig(r.p99, '.2f', '×')} -> {r.verdict}"
        )
    differ = [r for r in ratios if "slower" in r.verdict]

    def told(e: results.Estimate) -> bool:
        return e.ci95 is not None and not e.uninformative

    judged = [r for r in ratios if told(r.p50) or told(r.p99)]
    unjudged = [f"{r.rate:,.0f}" for r in ratios if r not in judged and r.p50.ci95 is None and r.p99.ci95 is None]
    noisy = [f"{r.rate:,.0f}" for r in ratios if r not in judged and f"{r.rate:,.0f}" not in unjudged]
    short = (f"; not judged at {', '.join(unjudged)} req/s (fewer than {estimate.MIN_BLOCKS} blocks with valid points"
             " of both)") if unjudged else ""  # fmt: skip
    if noisy:
        short += f"; too noisy to tell at {', '.join(noisy)} req/s (the ratio's interval reaches 0)"
    if not judged:
        lag = reasons.get("send lag", 0)
        cause = (
            f"; {lag} of {len(points)} points were left out for the generator's send lag, which more blocks do not "
            "shorten (make bench-generator measures it on this machine)"
            if lag * 2 > len(invalid) and invalid
            else "; or on a quieter machine"
        )
        lines.append(f"VERDICT: no rate could be judged{short}: re-run with more --blocks{cause}")
    elif not differ:
        lines.append(f"VERDICT: {ratios[0].a} and {ratios[0].b} do not differ at "
                     f"{', '.join(f'{r.rate:,.0f}' for r in judged)} req/s (every ratio's 95 % interval holds 1)"
                     f"{short}")  # fmt: skip
    else:
        at = ", ".join(f"{r.rate:,.0f} req/s ({r.verdict})" for r in differ)
        lines.append(f"VERDICT: {ratios[0].a} and {ratios[0].b} differ at {at}{short}")
    return lines


# ---- the run -----------------------------------------------------------------------------------------


def measure(
    targets: list[Target], args: argparse.Namespace, cfg: PointConfig, s: harness.Session
) -> list[results.PointRecord]:
    points: list[results.PointRecord] = []
    total = len(targets) * len(args.rates) * args.blocks
    for block in range(args.blocks):
        seed = args.seed + block
        visits = [(t.name, rate) for t in targets for rate in args.rates]
        for name, rate in blocks.shuffled(visits, seed):
            tag = f"b{block}_{name}_{rate:.0f}"
            p = run_point(BY_NAME[name], rate, seed, cfg, s.ep, s.out, tag)
            rec = record(p, name, block, seed, cfg.slo_ms)
            points.append(rec)
            flags = "" if rec.valid else f"  invalid: {'; '.join(rec.guard.reasons)}"
            p50 = f"{rec.p50_ms:7.2f}" if rec.p50_ms is not None else "    n/a"
            p99 = f"{rec.p99_ms:7.2f}" if rec.p99_ms is not None else "    inf"
            print(f"  [{len(points):3d}/{total}] block {block} {name:28s} {rate:6.0f} req/s  p50 {p50}  "
                  f"p99 {p99} ms{flags}", flush=True)  # fmt: skip
    return points


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()  # the whole command's time, the stack's start included
    args = parse_args(argv)
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    pair = tuple(BY_NAME[t] for t in args.targets.split(","))
    floors = {t.name: t.floor for t in pair if t.floor and args.floors}
    targets = [*pair, *(f for f in floors_of(list(pair)) if args.floors)]
    cfg = point_config(args)
    out = harness.folder(args.out, "compare-")
    print(f"{len(targets)} targets x {len(args.rates)} rates x {args.blocks} blocks -> {out}", flush=True)
    with harness.session(targets, args.artifacts, out, seed=args.seed) as s:
        if s.source.dirty:
            print(f"note: the tree has uncommitted changes ({len(s.source.changes)} paths)", flush=True)
        stopped = f"{args.blocks} blocks measured"
        points = measure(targets, args, cfg, s)
    print(f"bootstrapping {args.resamples} resamples over the blocks ...", flush=True)
    cells, ratios = summarise(points, (pair[0].name, pair[1].name), {k: v for k, v in floors.items() if v},
                              args.rates, resamples=args.resamples, seed=args.seed)  # fmt: skip
    seconds = time.monotonic() - t0
    run = results.CompareRun(
        started=s.started, seconds=round(seconds, 1), rates=list(args.rates), blocks=args.blocks,
        targets=[t.name for t in targets], slo_ms=args.slo_ms,
        point=results.PointSettings(warmup_s=cfg.warmup_s, min_window_s=cfg.min_window_s, windows=cfg.max_windows,
                                    min_samples=cfg.min_samples, sender=cfg.sender, spin_us=cfg.spin_us,
                                    processes=cfg.processes, priority=priority_of(cfg.priority)),
        guard=results.GuardLimits(max_generator_cpu_share=stats.MAX_GENERATOR_CPU_SHARE,
                                  min_machine_idle=stats.MIN_MACHINE_IDLE,
                                  max_lag_impact_share_of_slo=stats.MAX_LAG_IMPACT_SHARE_OF_SLO),
        stopped=stopped, environment=s.environment, source=s.source, cells=cells, ratios=ratios, points=points,
        verdict=verdict_lines(points, cells, ratios),
    )  # fmt: skip
    results.write_compare(run, out)
    path = report.write(run, out)
    print(f"report: {path} ({run.seconds / 60:.1f} min)")
    print("\n".join(run.verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
