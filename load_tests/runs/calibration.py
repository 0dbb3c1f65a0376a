"""``python -m load_tests.runs.calibration`` (``make bench-generator``): the load generator against a
server that answers at once (servers/trivial.py), one line per rate: its send lag (stamped after
the write), how much that lag moved the p99, its whole CPU (waits included), its processes. The
capacity run's calibration (its ceiling, and the CPU per request that sizes the split) is
``harness.calibrate``, on the same measurements.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import orjson

from load_tests import stats
from load_tests.contracts import SENDERS, SLO_MS, SPIN_SENDER_US
from load_tests.measure import point as measure
from load_tests.measure.point import PointConfig, run_point
from load_tests.reports import generator as report
from load_tests.runs import harness
from load_tests.targets import BY_NAME

BENCH_RATES = (500.0, 1000.0, 2000.0)  # make bench-generator; then doubled while the machine holds them
BENCH_SECONDS = 6.0  # measured seconds per rate (3 windows of 2 s, after 1 s of warm-up)


def line(s: dict[str, Any]) -> str:
    """``rate 1000 req/s: send lag p50 0.031 ms p99 0.412 ms, generator 38 % of a core, 1 process(es)``
    (the generator's whole CPU, waits included, of its busiest process)."""
    return harness.calibration_line(s)


def context(s: dict[str, Any]) -> str:
    def f(v: float | None, scale: float = 1.0, spec: str = ".3f") -> str:
        return "–" if v is None else format(v * scale, spec)

    return (
        f"    (send lag moved p99 by {f(s['lag_impact_ms'])} ms; {f(s['generator_cpu_us_per_req'], 1, '.0f')} µs of "
        f"generator CPU per request; machine {f(s['machine_idle'], 100, '.0f')} % idle; failed {s['failed']}"
        + (f"; guard: {'; '.join(s['reasons'])}" if s["reasons"] else "")
        + ")"
    )


def bench(args: argparse.Namespace) -> int:
    """``make bench-generator``: the generator against the trivial server at each rate, one line each."""
    spin = (
        args.spin_us if args.spin_us is not None else (SPIN_SENDER_US if args.sender == "spin" else PointConfig.spin_us)
    )
    cfg = PointConfig(
        slo_ms=args.slo_ms, warmup_s=1.0, min_window_s=BENCH_SECONDS / stats.STABLE_WINDOWS,
        max_windows=stats.STABLE_WINDOWS, early_stop=False, processes=args.processes, spin_us=spin,
        sender=args.sender, min_samples=1, priority=args.priority,
    )  # fmt: skip
    out = harness.folder(args.out, "generator-")
    target = BY_NAME["trivial"]
    print(
        f"make bench-generator: open-loop Locust against {target.name} (load_tests/servers/trivial.py), "
        f"{BENCH_SECONDS:.0f} s per rate, sender {args.sender} (cooperative spin {spin:.0f} µs before each send), "
        f"scheduling {measure.priority_of(args.priority)}; {measure.generator_cores()} generator core(s)",
        flush=True,
    )
    cpu_us = math.nan
    rows = []
    with harness.session([target], args.artifacts, out, stack=False) as s:
        rates = list(args.rates)
        while rates:
            rate = rates.pop(0)
            rcfg = dataclasses.replace(cfg, cpu_us_per_req=cpu_us)
            p = run_point(target, rate, args.seed, rcfg, s.ep, out, f"bench_{rate:.0f}")
            row = dataclasses.asdict(harness.calibration_point(p, args.slo_ms))
            rows.append(row)
            print(line(row), flush=True)
            print(context(row), flush=True)
            if row["generator_cpu_us_per_req"] is not None:
                cpu_us = max(cpu_us, row["generator_cpu_us_per_req"]) if math.isfinite(cpu_us) else row[
                    "generator_cpu_us_per_req"]  # fmt: skip
            held = p.failed == 0 and (row["generator_cpu_share"] or 0) <= stats.MAX_GENERATOR_CPU_SHARE
            if not rates and held and args.more and rate * 2 <= args.max_rate:
                rates.append(rate * 2)
    lines = report.verdict(rows)
    (out / "generator.json").write_bytes(
        orjson.dumps(
            {
                "sender": args.sender,
                "spin_us": spin,
                "priority": measure.priority_of(args.priority),
                "load_avg_before": s.environment.load_avg_before,
                "rates": rows,
                "verdict": lines,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"written: {out / 'generator.json'}, {report.write(out)}")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=list(BENCH_RATES))
    p.add_argument("--no-more", dest="more", action="store_false", help="only --rates (no doubling beyond)")
    p.add_argument("--max-rate", type=float, default=16_000.0)
    p.add_argument("--processes", type=int, default=0, help="generator processes (0: as many as each rate needs)")
    p.add_argument("--sender", choices=SENDERS, default=PointConfig.sender, help="how each send waits for its time")
    p.add_argument(
        "--spin-us", type=float, default=None, help="cooperative spin before each send (default: the sender's)"
    )
    p.add_argument("--priority", choices=("realtime", "normal"), default=PointConfig.priority,
                   help="the generator's scheduling (realtime: SCHED_RR 1 where allowed)")  # fmt: skip
    p.add_argument("--slo-ms", type=float, default=SLO_MS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None)
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    return bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
