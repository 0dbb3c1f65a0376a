"""The load generator measured against a server that answers at once (servers/trivial.py): its send
lag, its CPU per request (work, and precise waiting apart) and its ceiling, per process and in total.
``calibrate`` feeds the capacity runner (the work per request sizes the split across processes);
``python -m load_tests.runs.calibration`` is ``make bench-generator``: one line per rate."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

from load_tests import stats
from load_tests.measure import point as measure
from load_tests.measure.point import PointConfig, run_point
from load_tests.runs.stack import local_servers
from load_tests.targets import BY_NAME, Endpoints

CALIBRATION_START = 500.0  # req/s; doubled until the generator's guard trips
CALIBRATION_MAX = 64_000.0
BENCH_RATES = (500.0, 1000.0, 2000.0)  # make bench-generator; then doubled while the machine holds them
BENCH_SECONDS = 6.0  # measured seconds per rate (3 windows of 2 s, after 1 s of warm-up)


def _summary(p: stats.Point) -> dict[str, Any]:
    e = p.extra
    return {
        "rate": p.rate,
        "passes_slo": p.failed == 0 and p.samples > 0,
        "send_lag_p50_ms": e.get("send_lag_p50_ms", math.nan),
        "send_lag_p99_ms": e.get("send_lag_p99_ms", math.nan),
        "generator_core_share": e.get("generator_core_share", math.nan),
        "generator_work_share": e.get("generator_work_share", math.nan),
        "generator_waiting_share": e.get("generator_waiting_share", math.nan),
        "generator_work_us_per_req": e.get("generator_work_us_per_req", math.nan),
        "processes": e.get("generator_processes", 0),
        "machine_idle": e.get("machine_idle", math.nan),
        "machine_steal": e.get("machine_steal", math.nan),
        "failed": p.failed,
        "p99_ms": p.p99_ms,
        "invalid": p.invalid,
    }


def line(s: dict[str, Any]) -> str:
    """``rate 1000 req/s: send lag p50 0.031 ms p99 0.412 ms, generator 38 % of a core, 1 process(es)``
    (the generator's work, per process at most; its precise waiting is given apart)."""
    return (
        f"rate {s['rate']:.0f} req/s: send lag p50 {s['send_lag_p50_ms']:.3f} ms p99 {s['send_lag_p99_ms']:.3f} ms, "
        f"generator {s['generator_work_share'] * 100:.0f} % of a core, {s['processes']} process(es)"
    )


def context(s: dict[str, Any]) -> str:
    return (
        f"    (waiting precisely {s['generator_waiting_share'] * 100:.0f} % of a core more; "
        f"work {s['generator_work_us_per_req']:.0f} µs/req; machine {s['machine_idle'] * 100:.0f} % idle, "
        f"{s['machine_steal'] * 100:.1f} % steal; failed {s['failed']})"
    )


def calibrate(cfg: PointConfig, out: Path, seed: int, artifacts: Path) -> dict[str, Any]:
    """The generator's own ceiling: the highest rate, against a server that answers at once, at which
    no generator process does more than the guard's share of a core's work, nothing fails and p99 is
    within the SLO. Rates are doubled from CALIBRATION_START with one process, so the work per request
    of a single process is known at each; the split (PointConfig.processes_at) then uses the largest."""
    target = BY_NAME["trivial"]
    one = dataclasses.replace(cfg, processes=1)
    points = []
    with local_servers([target], artifacts, out / "run", Endpoints()) as ep:
        rate = CALIBRATION_START
        while rate <= CALIBRATION_MAX:
            p = run_point(target, rate, seed, one, ep, out, f"calibration_{rate:.0f}")
            s = _summary(p)
            gen_ok = not [r for r in p.invalid if "generator" in r]
            points.append({**s, "generator_ok": gen_ok, "passes": p.passes(cfg.slo_ms)})
            print("    calibration " + line(s), flush=True)
            if not gen_ok or not p.passes(cfg.slo_ms):
                break
            rate *= 2
        work = [p["generator_work_us_per_req"] for p in points if math.isfinite(p["generator_work_us_per_req"])]
        work_us = max(work) if work else math.nan
        per_process = max([p["rate"] for p in points if p["generator_ok"] and p["passes"]], default=0.0)
        cores = measure.generator_cores()
        total = per_process
        if cores > 1 and per_process > 0:  # the split, measured: double on as many processes as the rate needs
            split = dataclasses.replace(cfg, processes=0, work_us_per_req=work_us)
            rate = per_process * 2
            while rate <= min(CALIBRATION_MAX, per_process * cores * 2):
                p = run_point(target, rate, seed, split, ep, out, f"calibration_split_{rate:.0f}")
                s = _summary(p)
                ok = not [r for r in p.invalid if "generator" in r] and p.passes(cfg.slo_ms)
                points.append({**s, "generator_ok": ok, "passes": p.passes(cfg.slo_ms)})
                print("    calibration " + line(s), flush=True)
                if not ok:
                    break
                total = rate
                rate *= 2
    return {
        "ceiling_rps": per_process,  # one process
        "ceiling_rps_total": total,  # split across up to `generator_cores` processes (measured)
        "generator_cores": cores,
        "work_us_per_req": work_us,
        "points": points,
    }


def bench(args: argparse.Namespace) -> int:
    """``make bench-generator``: the generator against the trivial server at each rate, one line each."""
    cfg = PointConfig(
        slo_ms=args.slo_ms, warmup_s=1.0, min_window_s=BENCH_SECONDS / stats.STABLE_WINDOWS,
        max_windows=stats.STABLE_WINDOWS, early_stop=False, processes=args.processes, spin_us=args.spin_us,
        min_samples=1,
    )  # fmt: skip
    out = args.out or Path("reports") / time.strftime("generator-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    target = BY_NAME["trivial"]
    print(
        f"make bench-generator: open-loop Locust against {target.name} (load_tests/servers/trivial.py), "
        f"{BENCH_SECONDS:.0f} s per rate, precise wait {args.spin_us:.0f} µs; {measure.generator_cores()} "
        f"generator core(s)",
        flush=True,
    )
    work = math.nan
    results = []
    with local_servers([target], args.artifacts, out / "run", Endpoints()) as ep:
        rates = list(args.rates)
        while rates:
            rate = rates.pop(0)
            rcfg = dataclasses.replace(cfg, work_us_per_req=work)
            p = run_point(target, rate, args.seed, rcfg, ep, out, f"bench_{rate:.0f}")
            s = _summary(p)
            results.append(s)
            print(line(s), flush=True)
            print(context(s), flush=True)
            if math.isfinite(s["generator_work_us_per_req"]):
                work = (
                    max(work, s["generator_work_us_per_req"]) if math.isfinite(work) else s["generator_work_us_per_req"]
                )
            held = s["failed"] == 0 and s["generator_work_share"] <= stats.MAX_GENERATOR_CORE_SHARE
            if not rates and held and args.more and rate * 2 <= args.max_rate:
                rates.append(rate * 2)
    import orjson

    (out / "generator.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"written: {out / 'generator.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=list(BENCH_RATES))
    p.add_argument("--no-more", dest="more", action="store_false", help="only --rates (no doubling beyond)")
    p.add_argument("--max-rate", type=float, default=16_000.0)
    p.add_argument("--processes", type=int, default=0, help="generator processes (0: as many as each rate needs)")
    p.add_argument("--spin-us", type=float, default=PointConfig.spin_us, help="precise-wait window (0: timer only)")
    p.add_argument("--slo-ms", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None)
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    return bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
