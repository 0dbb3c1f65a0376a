"""``python -m load_tests.runs.capacity`` (``make load``): QPS at a p99 latency SLO for each target,
each server beside the floor it matches, with 95 % intervals from a block design.

The method (load_tests/blocks.py decides, load_tests/estimate.py estimates):

- open-loop Poisson arrivals (generator/openloop.py), latency from the intended send time, every
  point a fixed stretch (a warm-up, then ``--windows`` windows) with the generator guard
  (stats.invalid_reasons: did the generator move the p99, did it or the machine run out of CPU);
- blocks: each visits every target and its floor at the fixed rate and at several rates around its
  knee (learned from the blocks before; block 0 finds it coarsely), in a shuffled order, with one
  seed per block (the same arrivals for every target of a block);
- after each block: every target's points refitted (p99 = a + b/(μ − λ), all valid points at once)
  and its QPS@SLO interval bootstrapped over whole blocks; the run stops once every direct target's
  interval half-width is within ``--half-width`` of its estimate (after at least ``--min-blocks``),
  or before a block that would end past ``--budget-min``;
- ratios to the floor (p50 and p99 at the fixed rate, QPS@SLO), paired within blocks, each with its
  interval; the two servers compared the same way.

The generator is calibrated against a trivial server first (its ceiling, and its CPU per request,
which sizes the split of a rate across generator processes). Writes ``reports/<time>/``:
results.json (load_tests/results.py, its JSON Schema beside it), report.md, plots, the exact
timings of every point. ``--reanalyse DIR`` refits an earlier run's points and re-renders it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from load_tests import blocks, estimate, results
from load_tests.contracts import SLO_MS
from load_tests.measure.point import PointConfig, priority_of, record, run_point
from load_tests.reports import capacity as report
from load_tests.runs import harness
from load_tests.runs.stack import floors_of
from load_tests.targets import BY_NAME, SERVING_TARGETS, TARGETS, Target

# Tuning constants (each also a command-line option).
DEFAULT_TARGETS = blocks.DIRECT  # with their floors; --targets adds gRPC and gateway targets
FIXED_RATE = 200.0  # req/s: every server holds it here; p50/p99 ratios to the floor are taken at it
MAX_RATE = 50_000.0
BUDGET_MIN = 40.0  # the blocks end before this (start-up and calibration included): make load ≤ 45 min
HALF_WIDTH = 0.10  # stop once every direct target's 95 % interval is within ± this share
# A point: 1 s warm-up and 3 windows of ≥ 1.5 s and together ≥ 1,500 requests (a p99 on ≥ 15 above
# it); with Locust's start-up about 7-10 s. Many short points around the knee beat few long ones:
# the fit pools them, and the blocks' spread is what the interval measures.
WARMUP_S = 1.0
MIN_WINDOW_S = 1.5
WINDOWS = 3
MIN_SAMPLES = 1500


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list-targets", action="store_true", help="print every target name, one per line, and exit")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated (default: %(default)s)")
    p.add_argument("--no-floors", dest="floors", action="store_false", help="do not measure the targets' floors")
    p.add_argument("--slo-ms", type=float, default=SLO_MS, help="p99 latency SLO (default: %(default)s)")
    p.add_argument("--fixed-rate", type=float, default=FIXED_RATE, help="p50/p99 beside the floor at this rate")
    p.add_argument("--start-rate", type=float, default=0.0, help="block 0's first rate (default: the fixed rate)")
    p.add_argument("--max-rate", type=float, default=MAX_RATE, help="never offer more (req/s)")
    p.add_argument("--budget-min", type=float, default=BUDGET_MIN, help="no block starts that would end later")
    p.add_argument("--half-width", type=float, default=HALF_WIDTH, help="the direct targets' interval goal")
    p.add_argument("--min-blocks", type=int, default=estimate.MIN_BLOCKS)
    p.add_argument("--max-blocks", type=int, default=0, help="stop after this many blocks (0: the goal or budget)")
    p.add_argument("--knee-steps", type=lambda v: [float(x) for x in v.split(",")], default=list(blocks.KNEE_STEPS),
                   help="a block's rates around each knee, × the estimate (default: %(default)s)")  # fmt: skip
    p.add_argument("--min-samples", type=int, default=MIN_SAMPLES, help="requests per point's measured windows")
    p.add_argument("--min-window-s", type=float, default=MIN_WINDOW_S)
    p.add_argument("--windows", type=int, default=WINDOWS)
    p.add_argument("--warmup", type=float, default=WARMUP_S)
    p.add_argument("--processes", type=int, default=0, help="Locust processes per point (0: as many as the rate needs)")
    p.add_argument("--sender", default=PointConfig.sender, help="how each send waits (timerfd, spin, timer)")
    p.add_argument("--spin-us", type=float, default=PointConfig.spin_us, help="cooperative spin before each send")
    p.add_argument("--priority", choices=("realtime", "normal"), default=PointConfig.priority,
                   help="the generator's scheduling (realtime: SCHED_RR 1 where allowed)")  # fmt: skip
    p.add_argument("--floor-device", default="cpu", help="the TorchScript floors' device: cpu or cuda:0")
    p.add_argument("--no-calibration", action="store_true")
    p.add_argument("--resamples", type=int, default=estimate.RESAMPLES, help="bootstrap resamples of the final fit")
    p.add_argument("--reanalyse", type=Path, metavar="DIR", help="only: refit DIR's points and re-render its report")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/<time>)")
    args = p.parse_args(argv)
    if args.slo_ms <= 0 or args.fixed_rate <= 0 or args.windows < 1:
        p.error("--slo-ms, --fixed-rate and --windows must be positive")
    unknown = [t for t in args.targets.split(",") if t not in BY_NAME]
    if unknown and not args.list_targets:
        p.error(f"unknown target(s) {', '.join(unknown)}; --list-targets prints them")
    return args


def point_config(args: argparse.Namespace) -> PointConfig:
    return PointConfig(
        slo_ms=args.slo_ms, warmup_s=args.warmup, min_window_s=args.min_window_s, max_windows=args.windows,
        early_stop=False, processes=args.processes, min_samples=args.min_samples, spin_us=args.spin_us,
        sender=args.sender, priority=args.priority,
    )  # fmt: skip


def method(args: argparse.Namespace, cfg: PointConfig, stopped: str) -> results.Method:
    from load_tests import stats

    return results.Method(
        slo_ms=args.slo_ms,
        fixed_rate=args.fixed_rate,
        start_rate=args.start_rate or args.fixed_rate,
        max_rate=args.max_rate,
        knee_steps=list(args.knee_steps),
        target_half_width=args.half_width,
        min_blocks=args.min_blocks,
        budget_s=args.budget_min * 60,
        resamples=args.resamples,
        confidence=estimate.CONFIDENCE,
        point=results.PointSettings(
            warmup_s=cfg.warmup_s,
            min_window_s=cfg.min_window_s,
            windows=cfg.max_windows,
            min_samples=cfg.min_samples,
            sender=cfg.sender,
            spin_us=cfg.spin_us,
            processes=cfg.processes,
            priority=priority_of(cfg.priority),
        ),
        guard=results.GuardLimits(
            max_generator_cpu_share=stats.MAX_GENERATOR_CPU_SHARE,
            min_machine_idle=stats.MIN_MACHINE_IDLE,
            max_lag_impact_share_of_slo=stats.MAX_LAG_IMPACT_SHARE_OF_SLO,
        ),
        stopped=stopped,
    )


def progress(summary: blocks.Summary) -> str:
    lines = []
    for name, t in summary.targets.items():
        q = t.qps_at_slo
        if q.estimate is None:
            figure = f"not estimable ({q.reason or t.fit.reason})"
        elif q.ci95 is None:
            figure = f"{q.estimate:,.0f} req/s, no interval yet ({q.reason})"
        else:
            figure = (f"{q.estimate:,.0f} req/s (95 % CI {q.ci95[0]:,.0f}–{q.ci95[1]:,.0f}, "
                      f"±{(q.half_width or 0) * 100:.1f} %)")  # fmt: skip
        lines.append(f"  {name:28s} QPS@SLO {figure}; {t.points_valid}/{t.points_total} points valid")
    return "\n".join(lines)


class Runner:
    """Measures the blocks and keeps every point."""

    def __init__(self, targets: list[Target], cfg: PointConfig, session: harness.Session, args: argparse.Namespace):
        self.targets, self.cfg, self.s, self.args = targets, cfg, session, args
        self.points: list[results.PointRecord] = []
        self.blocks: list[results.BlockRecord] = []
        self.last = blocks.Summary({}, [])  # the estimates after the latest block

    def measure(self, target: Target, rate: float, block: int, seed: int) -> results.PointRecord:
        tag = f"b{block}_{target.name}_{rate:.0f}_{sum(p.target == target.name for p in self.points)}"
        p = run_point(target, rate, seed, self.cfg, self.s.ep, self.s.out, tag)
        rec = record(p, target.name, block, seed, self.cfg.slo_ms)
        self.points.append(rec)
        verdict = "pass" if rec.passes else "FAIL"
        flags = "" if rec.valid else f"  invalid: {'; '.join(rec.guard.reasons)}"
        procs = rec.guard.generator_processes
        print(
            f"    {target.name:28s} {rate:8.0f} req/s  p50 {_ms(rec.p50_ms)}  p99 {_ms(rec.p99_ms)} ms  {verdict}"
            f"{'' if procs == 1 else f' ({procs} generator processes)'}{flags}",
            flush=True,
        )
        return rec

    def block(self, index: int) -> float:
        """Measure block ``index``; its duration."""
        t0 = time.monotonic()
        seed = self.args.seed + index
        n = len(self.points)
        per = blocks.by_target(self.points)
        start = self.args.start_rate or self.args.fixed_rate
        if index == 0:  # the coarse climb, in rounds, every target still climbing once per round
            round_ = 0
            while True:
                visits = []
                for t in self.targets:
                    mine = [p for p in self.points if p.target == t.name and p.block == 0]
                    nxt = blocks.climb_next(mine, self.cfg.slo_ms, start, self.args.max_rate)
                    if nxt is not None:
                        visits.append((t.name, nxt))
                if not visits:
                    break
                for name, rate in blocks.shuffled(visits, seed * 1000 + round_):
                    self.measure(BY_NAME[name], rate, 0, seed)
                round_ += 1
        else:
            visits = []
            for t in self.targets:
                rng = random.Random(f"{seed}:{t.name}")
                for rate in blocks.knee_plan(per.get(t.name, []), self.cfg.slo_ms, self.args.fixed_rate,
                                             self.args.max_rate, self.args.knee_steps, rng):  # fmt: skip
                    visits.append((t.name, rate))
            for name, rate in blocks.shuffled(visits, seed):
                self.measure(BY_NAME[name], rate, index, seed)
        seconds = time.monotonic() - t0
        summary = blocks.summarise(self.targets, self.points, self.cfg.slo_ms, self.args.fixed_rate,
                                   resamples=estimate.QUICK_RESAMPLES, seed=self.args.seed)  # fmt: skip
        self.blocks.append(
            results.BlockRecord(
                index=index, seed=seed, started_s=round(self.s.elapsed_s - seconds, 1), seconds=round(seconds, 1),
                points=len(self.points) - n, qps={k: v.qps_at_slo for k, v in summary.targets.items()},
            )
        )  # fmt: skip
        print(f"block {index} done in {seconds / 60:.1f} min ({len(self.points) - n} points; "
              f"{self.s.elapsed_s / 60:.1f} min since the start):", flush=True)  # fmt: skip
        print(progress(summary), flush=True)
        self.last = summary
        return seconds


def _ms(v: float | None) -> str:
    return f"{v:8.2f}" if v is not None else "     inf"


def run_blocks(runner: Runner, args: argparse.Namespace) -> str:
    """Blocks until the goal, the budget or --max-blocks; why it stopped."""
    budget = args.budget_min * 60
    last = 0.0
    index = 0
    while True:
        if index > 0 and runner.s.elapsed_s + last > budget:
            return (f"the time budget ({args.budget_min:g} min) would have ended during block {index}: "
                    f"{index} blocks measured")  # fmt: skip
        print(f"block {index}: " + ("finding each knee coarsely" if index == 0 else "around each knee"), flush=True)
        last = runner.block(index)
        index += 1
        if args.max_blocks and index >= args.max_blocks:
            return f"--max-blocks {args.max_blocks} reached"
        if index >= args.min_blocks and blocks.converged(runner.last.targets, args.half_width):
            return (f"every direct target's 95 % interval was within ±{args.half_width:.0%} after "
                    f"{index} blocks")  # fmt: skip


def assemble(
    targets: list[Target],
    points: list[results.PointRecord],
    block_records: list[results.BlockRecord],
    args: argparse.Namespace,
    cfg: PointConfig,
    stopped: str,
    s: harness.Session | None,
    previous: results.CapacityRun | None = None,
) -> results.CapacityRun:
    print(f"fitting {len(points)} points, {args.resamples} bootstrap resamples over the blocks ...", flush=True)
    summary = blocks.summarise(targets, points, args.slo_ms, args.fixed_rate, resamples=args.resamples,
                               seed=args.seed)  # fmt: skip
    names = {t.name for t in targets}
    if s is not None:
        env, source, cal, started, seconds = s.environment, s.source, s.calibration, s.started, s.elapsed_s
    else:
        assert previous is not None
        env, source, cal = previous.environment, previous.source, previous.calibration
        started, seconds = previous.started, previous.seconds
    return results.CapacityRun(
        schema_version=results.SCHEMA_VERSION,
        commit=source.commit,
        dirty=source.dirty,
        started=started,
        seconds=round(seconds),
        method=method(args, cfg, stopped),
        targets=summary.targets,
        comparisons=summary.comparisons,
        points=points,
        blocks=block_records,
        calibration=cal,
        environment=env,
        source=source,
        left_out=[t.name for t in SERVING_TARGETS if t.name not in names],
    )


def reanalyse(folder: Path, args: argparse.Namespace) -> int:
    """Refit an earlier run's points with this estimator and re-render its report (measures nothing)."""
    prev = results.read(folder)
    m = prev.method
    args.slo_ms, args.fixed_rate = m.slo_ms, m.fixed_rate
    args.start_rate, args.max_rate, args.knee_steps = m.start_rate, m.max_rate, m.knee_steps
    args.half_width, args.min_blocks, args.budget_min = m.target_half_width, m.min_blocks, m.budget_s / 60
    cfg = PointConfig(slo_ms=m.slo_ms, warmup_s=m.point.warmup_s, min_window_s=m.point.min_window_s,
                      max_windows=m.point.windows, early_stop=False, processes=m.point.processes,
                      min_samples=m.point.min_samples, spin_us=m.point.spin_us, sender=m.point.sender)  # fmt: skip
    targets = [BY_NAME[n] for n in prev.targets]
    run = assemble(targets, prev.points, prev.blocks, args, cfg, m.stopped, None, prev)
    run.method.point = m.point  # as measured, not as this machine would
    results.write(run, folder)
    print(f"report: {report.write_capacity(folder, run)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_targets:
        print("\n".join(t.name for t in TARGETS))
        return 0
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    if args.reanalyse:
        return reanalyse(args.reanalyse, args)
    targets = [BY_NAME[t] for t in args.targets.split(",")]
    if args.floors:
        targets += [f for f in floors_of(targets) if f not in targets]
    cfg = point_config(args)
    out = harness.folder(args.out)
    calibrate = None if args.no_calibration else cfg
    with harness.session(targets, args.artifacts, out, floor_device=args.floor_device, calibrate=calibrate,
                         seed=args.seed) as s:  # fmt: skip
        if s.source.dirty:
            print(f"note: the tree has uncommitted changes ({len(s.source.changes)} paths): this run's report "
                  "will say it is not of committed quality", flush=True)  # fmt: skip
        cfg = harness.with_calibration(cfg, s.calibration)
        runner = Runner(targets, cfg, s, args)
        try:
            stopped = run_blocks(runner, args)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM: keep what was measured
            stopped = f"interrupted during block {len(runner.blocks)}"
            if not runner.points:
                raise
        run = assemble(targets, runner.points, runner.blocks, args, cfg, stopped, s)
    # the session's end recorded the machine's load after the run into run.environment
    results.write(run, out)
    path = report.write_capacity(out, run)
    print(f"{stopped}\nreport: {path} ({run.seconds / 60:.0f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
