"""``python -m load_tests.runs.capacity`` (``make load``): QPS at a p99 latency SLO for every target,
the way MLPerf's Server scenario and perf_analyzer measure it, each server beside its floor.

Per target: open-loop Poisson arrivals (generator/openloop.py), latency from the intended send time, each
point run in windows until 3 agree (stats.stable), a search for the highest rate whose p99 meets
the SLO (stats.search_capacity), repeated ``--repeats`` times with the targets interleaved (repeat r
visits them in a rotated order, so slow drifts of a shared machine spread over all), reported as a
mean with a 95 % confidence interval. Then an independent run of ``--verify-s`` seconds at each
reported QPS@SLO, with the server-side breakdown. The generator is calibrated against a trivial
server first (runs/calibration.py), which also sizes the split of each rate across generator
processes, and every point carries the generator guard (stats.invalid_reasons). Each target's floor
(the same model behind the leanest server, servers/floor.py) runs in the same searches, and the
report gives every server's p50, p99 (at ``FLOOR_RATE``) and QPS@SLO as a ratio to its floor.

Writes ``reports/<time>/``: report.md, results.json, plots, the exact timings of every run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from load_tests import stats
from load_tests.measure import cpu
from load_tests.measure.point import PointConfig, run_point
from load_tests.reports import capacity as report
from load_tests.reports import environment as report_env
from load_tests.runs.calibration import calibrate
from load_tests.runs.stack import floors_of, local_servers, native_stack
from load_tests.targets import BY_NAME, TARGETS, Endpoints, Target

# Tuning constants (each also a command-line option).
DEFAULT_TARGETS = (
    "tfserving",
    "torchserve",
    "torchserve-onnx",
    "tfserving-grpc",
    "torchserve-grpc",
    "gateway-tfserving",
    "gateway-torchserve",
    "gateway-torchserve-onnx",
)
SLO_MS = 10.0  # p99 on CPU; 5 ms is a fair start on a GPU (--slo-ms)
REPEATS = 3  # ≥ 3 for a confidence interval
START_RATE = 200.0  # req/s of the first step of the first repeat
BRACKET = 0.15  # later repeats start from the first's result ± this share
MAX_RATE = 50_000.0
VERIFY_S = 15.0
FLOOR_RATE = 200.0  # req/s at which each server's p50/p99 is set beside its floor's (every server holds it here)


def measure_search(
    target: Target,
    cfg: PointConfig,
    ep: Endpoints,
    out: Path,
    seed: int,
    start: float,
    bracket: tuple[float, float] | None,
    label: str,
    tolerance: float = stats.CAPACITY_TOLERANCE,
    max_rate: float = MAX_RATE,
) -> stats.Search:
    n = 0

    def measure(rate: float) -> stats.Point:
        nonlocal n
        n += 1
        p = run_point(target, rate, seed, cfg, ep, out, f"{label}_{target.name}_s{n}_{rate:.0f}")
        verdict = "pass" if p.passes(cfg.slo_ms) else "FAIL"
        flags = "" if p.valid else f"  invalid: {'; '.join(p.invalid)}"
        print(
            f"    {target.name:24s} {rate:8.0f} req/s  p50 {p.p50_ms:7.2f}  p99 {p.p99_ms:8.2f} ms  "
            f"{verdict}{'' if p.stable else ' (unstable)'}{flags}",
            flush=True,
        )
        return p

    return stats.search_capacity(measure, cfg.slo_ms, start, bracket=bracket, tolerance=tolerance, max_rate=max_rate)


def point_dict(p: stats.Point, slo_ms: float) -> dict[str, Any]:
    return {**dataclasses.asdict(p), "passes": p.passes(slo_ms), "valid": p.valid}


def capacity_entry(target: str, slo_ms: float, searches: list[stats.Search]) -> dict[str, Any]:
    qps = [s.qps for s in searches]
    mean, lo, hi = stats.mean_ci95(qps)
    at = [s.at_qps for s in searches]
    ceilings = [s.at_ceiling for s in searches]
    # Valid when the generator guard held at every reported rate, and no bracketing failure was the
    # generator's own lag.
    valid = all(p is not None and p.valid for p in at) and all(
        c is None or not any("send lag" in r for r in c.invalid) for c in ceilings
    )
    return {
        "target": target,
        "slo_p99_ms": slo_ms,
        "qps": mean,
        "ci95": [lo, hi],
        "valid": valid,
        "repeats": qps,
        "stable": all(p is not None and p.stable for p in at),
        "invalid_reasons": sorted({r for p in at if p for r in p.invalid}),
    }


def verify_entry(
    target: Target, capacity: dict[str, Any], cfg: PointConfig, ep: Endpoints, out: Path, seed: int, seconds: float
) -> dict[str, Any]:
    """An independent run at the reported QPS@SLO; if its p99 misses the SLO, a second one at the
    low end of what the repeats support (the CI's lower bound, but not below the lowest repeat's
    own passing rate), recorded beside the first, never instead of it."""
    v = verify(target, capacity["qps"], cfg, ep, out, seed, seconds)
    low = max(capacity["ci95"][0] or 0.0, min(capacity["repeats"]))
    if not v["passes"] and 0 < low < capacity["qps"]:
        v["at_ci_low"] = verify(target, low, cfg, ep, out, seed + 1, seconds, tag="verify_ci_low")
    return v


def verify(
    target: Target,
    qps: float,
    cfg: PointConfig,
    ep: Endpoints,
    out: Path,
    seed: int,
    seconds: float,
    tag: str = "verify",
) -> dict[str, Any]:
    """An independent run at ``qps``: one stretch of ``seconds``, no early stop."""
    vcfg = dataclasses.replace(cfg, min_window_s=seconds / stats.STABLE_WINDOWS, early_stop=False,
                               max_windows=stats.STABLE_WINDOWS)  # fmt: skip
    p = run_point(target, qps, seed, vcfg, ep, out, f"{tag}_{target.name}")
    print(
        f"    verify {target.name:24s} {qps:8.0f} req/s for {seconds:.0f} s: p50 {p.p50_ms:.2f} ms, p99 "
        f"{p.p99_ms:.2f} ms, failures {p.failed} -> {'within' if p.passes(cfg.slo_ms) else 'OUTSIDE'} the SLO",
        flush=True,
    )
    return {"target": target.name, "seconds": seconds, **point_dict(p, cfg.slo_ms)}


def reverify_missed(folder: Path, args: argparse.Namespace) -> int:
    """Add the CI-low verification run to an earlier report's missed verifications (the stack on
    the usual ports must be running, e.g. `make serve`), then re-render its report."""
    import orjson

    from serving.native.settings import ServingPorts

    results = orjson.loads((folder / "results.json").read_bytes())
    m = results["method"]
    cfg = PointConfig(**{**m["point"], "early_stop": True})
    ep = Endpoints.native(ServingPorts.from_env())
    caps = {c["target"]: c for c in results["capacity"]}
    for v in results["verify"]:
        c = caps[v["target"]]
        low = max(c["ci95"][0] or 0.0, min(c["repeats"]))
        if not v["passes"] and "at_ci_low" not in v and 0 < low < c["qps"]:
            seed = args.seed + 1001
            v["at_ci_low"] = verify(BY_NAME[v["target"]], low, cfg, ep, folder, seed, v["seconds"], "verify_ci_low")
            v["at_ci_low"]["added_later"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(report.write_capacity(folder, results))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list-targets", action="store_true", help="print every target name, one per line, and exit")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    p.add_argument("--no-floors", dest="floors", action="store_false", help="do not measure the targets' floors")
    p.add_argument("--slo-ms", type=float, default=SLO_MS, help="p99 latency SLO (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--start-rate", type=float, default=START_RATE)
    p.add_argument("--max-rate", type=float, default=MAX_RATE, help="the search never offers more (req/s)")
    p.add_argument("--floor-rate", type=float, default=FLOOR_RATE, help="p50/p99 beside the floor at this rate")
    p.add_argument("--min-samples", type=int, default=stats.MIN_STEP_SAMPLES, help="requests per measured point")
    p.add_argument("--min-window-s", type=float, default=PointConfig.min_window_s)
    p.add_argument("--max-windows", type=int, default=PointConfig.max_windows)
    p.add_argument("--warmup", type=float, default=PointConfig.warmup_s)
    p.add_argument(
        "--processes",
        type=int,
        default=PointConfig.processes,
        help="Locust processes per point (default 0: as many as the rate needs, from the calibration)",
    )
    p.add_argument("--spin-us", type=float, default=PointConfig.spin_us, help="precise-wait window (0: timer only)")
    p.add_argument("--floor-device", default="cpu", help="the TorchScript floor's device: cpu or cuda:0")
    p.add_argument("--verify-s", type=float, default=VERIFY_S, help="0 skips the verification runs")
    p.add_argument("--no-calibration", action="store_true")
    p.add_argument(
        "--reverify-missed",
        type=Path,
        metavar="DIR",
        help="only: for DIR's targets whose verification missed the SLO, add the run at the CI's low end",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None, help="report folder (default: reports/<time>)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.slo_ms <= 0:
        p.error("--repeats must be ≥ 1 and --slo-ms positive")
    unknown = [t for t in args.targets.split(",") if t not in BY_NAME]
    if unknown and not args.list_targets:
        p.error(f"unknown target(s) {', '.join(unknown)}; --list-targets prints them")
    return args  # fmt: skip


def floor_points(
    targets: list[Target], cfg: PointConfig, ep: Endpoints, out: Path, seed: int, rate: float, repeats: int
) -> dict[str, list[dict[str, Any]]]:
    """Each target and each floor at one fixed rate, interleaved, ``repeats`` times (the same arrivals
    for all in a repeat): the p50/p99 ratios to the floor come from these."""
    points: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    fixed = dataclasses.replace(cfg, early_stop=False, max_windows=stats.STABLE_WINDOWS)
    for r in range(repeats):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for t in order:
            p = run_point(t, rate, seed + 2000 + r, fixed, ep, out, f"floor{r + 1}_{t.name}")
            points[t.name].append(point_dict(p, cfg.slo_ms))
            print(f"    at {rate:.0f} req/s {t.name:24s} p50 {p.p50_ms:7.2f}  p99 {p.p99_ms:8.2f} ms", flush=True)
    return points


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_targets:
        print("\n".join(t.name for t in TARGETS))
        return 0
    from serving.native.process import exit_on_sigterm
    from serving.native.settings import ServingPorts

    exit_on_sigterm()
    if args.reverify_missed:
        return reverify_missed(args.reverify_missed, args)
    targets = [BY_NAME[t] for t in args.targets.split(",")]
    if args.floors:
        targets += [f for f in floors_of(targets) if f not in targets]
    cfg = PointConfig(
        args.slo_ms, args.warmup, args.min_window_s, args.max_windows, True, args.processes, args.min_samples,
        args.spin_us,
    )  # fmt: skip
    out = args.out or Path("reports") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ports = ServingPorts.from_env()
    servers = sorted({t.server for t in targets if t.server in ("tfserving", "torchserve")})
    gateway = any(t.via_gateway or t.name.startswith("gateway") for t in targets)
    if gateway:
        servers = ["tfserving", "torchserve"]  # the gateway's backends
    stack = native_stack(args.artifacts, out / "run", ports, servers, gateway) if servers else contextlib.nullcontext()
    local = local_servers(targets, args.artifacts, out / "run", Endpoints.native(ports), args.floor_device)
    with stack, local as ep:
        cores = cpu.pinning()
        if cores:
            for server in cpu.SERVER_PROCESSES:
                cpu.pin([p.pid for p in cpu.server_processes(server)], cores[1])
        env = report_env.environment(ep.url(BY_NAME["gateway-tfserving"]))
        env["pinning"] = (
            f"generator on cores {cores[0]}, servers and gateway on {cores[1]}"
            if cores
            else f"none: {env['cores']} cores (< {cpu.PIN_MIN_CORES}), the generator shares them"
        )
        sampler = report_env.GpuSampler()
        calibration = None
        if not args.no_calibration:
            print("calibrating the load generator against a trivial server ...", flush=True)
            calibration = calibrate(cfg, out, args.seed, args.artifacts)
            cfg = dataclasses.replace(cfg, work_us_per_req=calibration["work_us_per_req"])
            print(
                f"  generator ceiling {calibration['ceiling_rps']:,.0f} req/s per process, "
                f"{calibration['ceiling_rps_total']:,.0f} req/s over {calibration['generator_cores']} core(s); "
                f"work {calibration['work_us_per_req']:.0f} µs/req",
                flush=True,
            )
        searches: dict[str, list[stats.Search]] = {t.name: [] for t in targets}
        for r in range(args.repeats):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            print(f"repeat {r + 1}/{args.repeats}: {', '.join(t.name for t in order)}", flush=True)
            for t in order:
                first = searches[t.name][0].qps if searches[t.name] else 0.0
                bracket = (first * (1 - BRACKET), first * (1 + BRACKET)) if first > 0 else None
                s = measure_search(
                    t, cfg, ep, out, args.seed + r, args.start_rate, bracket, f"r{r + 1}", max_rate=args.max_rate
                )
                searches[t.name].append(s)
                print(f"  {t.name}: QPS@SLO {s.qps:,.0f} req/s (fails at {s.ceiling:,.0f})", flush=True)
        capacity = [capacity_entry(t.name, cfg.slo_ms, searches[t.name]) for t in targets]
        at_floor_rate: dict[str, list[dict[str, Any]]] = {}
        if args.floors and any(t.floor for t in targets) and args.floor_rate > 0:
            print(f"each target beside its floor at {args.floor_rate:.0f} req/s ...", flush=True)
            at_floor_rate = floor_points(targets, cfg, ep, out, args.seed, args.floor_rate, args.repeats)
        verified = []
        if args.verify_s > 0:
            print(f"verifying each QPS@SLO with an independent {args.verify_s:.0f} s run ...", flush=True)
            for t, c in zip(targets, capacity, strict=True):
                if c["qps"] > 0:
                    verified.append(verify_entry(t, c, cfg, ep, out, args.seed + 1000, args.verify_s))
        env["load_avg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        env["gpu_samples"] = sampler.stop()
    results: dict[str, Any] = {
        "method": {
            "slo_p99_ms": cfg.slo_ms,
            "repeats": args.repeats,
            "point": dataclasses.asdict(cfg),
            "capacity_tolerance": stats.CAPACITY_TOLERANCE,
            "stable_windows": stats.STABLE_WINDOWS,
            "stable_tolerance": stats.STABLE_TOLERANCE,
            "min_step_samples": stats.MIN_STEP_SAMPLES,
            "max_window_s": stats.MAX_WINDOW_S,
            "floor_rate": args.floor_rate,
            "guard": {
                "max_generator_core_share": stats.MAX_GENERATOR_CORE_SHARE,
                "min_machine_idle": stats.MIN_MACHINE_IDLE,
                "max_send_lag_share_of_slo": stats.MAX_SEND_LAG_SHARE_OF_SLO,
            },
            "seconds": round(time.monotonic() - started),
        },
        "capacity": capacity,
        "floors": {t.name: t.floor for t in targets if t.floor},
        "at_floor_rate": at_floor_rate,
        "searches": {
            name: [
                {"qps": s.qps, "ceiling": s.ceiling, "steps": [point_dict(p, cfg.slo_ms) for p in s.steps]} for s in ss
            ]
            for name, ss in searches.items()
        },
        "verify": verified,
        "calibration": calibration,
        "environment": env,
    }
    path = report.write_capacity(out, results)
    print(f"report: {path} ({results['method']['seconds'] / 60:.0f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
