"""``python -m load_tests.runs.sweep`` (``make load-sweep``): each server's batching trade-off.

For each server, max batch {1, 8, 32} x batch delay {0, 1, 2, 5} ms (batch 1 never waits, so it
runs once, with 0 ms; TorchServe cannot express a 0 ms delay, see ``TS_MIN_DELAY_MS``): the server
is started alone with that configuration (TorchServe's describe API confirms what it really runs),
its QPS@SLO found (one search, ``TOLERANCE``) and its p50 at a low rate measured. Both servers' best
configurations are then compared, best against best. ``--servers torchserve --reuse DIR`` re-runs
one server and keeps the other's entries from an earlier sweep.

Parity rule: one model executor per model on both sides — TF Serving ``num_batch_threads`` =
TorchServe workers per model = ``--executors`` (default 1 on this 2-core machine); TF's
``max_execution_batch_size`` = TorchServe's ``batchSize``; ``batch_timeout_micros`` = ``maxBatchDelay``.
The row limit per request (``max_batch_size`` 256 with large-batch splitting) stays as shipped.

Bounded: 16 configurations x (start + ~5 search steps of 3 windows + 1 low-load point), about
27 min on 2 cores, then 2 x 3 confirmation searches, about 10 min.
Writes ``reports/sweep-<time>/`` (sweep.md, sweep.json, sweep.png).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from load_tests import stats
from load_tests.contracts import SLO_MS
from load_tests.measure import machine
from load_tests.measure.point import PointConfig, run_point
from load_tests.reports.sweep import SERVERS, Method, best_per_server, sweep_verdict, write
from load_tests.runs import harness
from load_tests.targets import BY_NAME, TF_LEAN, TS_LEAN, Endpoints, Target

MAX_BATCH = (1, 8, 32)
DELAY_MS = (0, 1, 2, 5)
# --device gpu: a GPU wins over a CPU core only on large forward passes (docs/load-report-gpu-h200:
# between 32 and 256 rows for this model), so its grid reaches the row limit per request.
GPU_MAX_BATCH = (1, 32, 128, 256)
GPU_DELAY_MS = (1, 2, 5)
GRIDS = {"cpu": (MAX_BATCH, DELAY_MS), "gpu": (GPU_MAX_BATCH, GPU_DELAY_MS)}
LOW_RATE = 100.0  # req/s for the low-load p50
LOW_SAMPLES = 600
CONFIRM_REPEATS = 3  # the minimum for a Student-t interval, as make load
TOLERANCE = 0.10  # coarser than make load's 5 %: 16 configurations, one search each
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0


# TorchServe 0.12 reads ``maxBatchDelay: 0`` as unset and applies its default, 100 ms (its describe
# API then shows 100): a zero delay cannot be expressed there, so TorchServe's grid starts at 1 ms.
TS_MIN_DELAY_MS = 1
# A previous configuration's QPS@SLO seeds the next search's bracket only above this; below it (a
# configuration that barely met the SLO) the search starts afresh from --start-rate.
MIN_HINT = 100.0


# Each configuration's floor: the lean one (no batching). A batching floor copies the shipped batching
# (targets.py), which the sweep varies; the lean floor is the one reference for every configuration.
LEAN_FLOOR = {"tfserving": TF_LEAN, "torchserve": TS_LEAN}


def point_dict(p: stats.Point, slo_ms: float) -> dict[str, Any]:
    return {**dataclasses.asdict(p), "passes": p.passes(slo_ms), "valid": p.valid}


def measure_search(
    target: Target,
    cfg: PointConfig,
    ep: Endpoints,
    out: Path,
    seed: int,
    start: float,
    bracket: tuple[float, float] | None,
    label: str,
    tolerance: float = TOLERANCE,
) -> stats.Search:
    """One QPS@SLO search (exponential, then bisection to ``tolerance``; stats.search_capacity): the
    sweep's single draw per configuration."""
    n = 0

    def measure(rate: float) -> stats.Point:
        nonlocal n
        n += 1
        p = run_point(target, rate, seed, cfg, ep, out, f"{label}_{target.name}_s{n}_{rate:.0f}")
        flags = "" if p.valid else f"  invalid: {'; '.join(p.invalid)}"
        print(f"    {target.name:24s} {rate:8.0f} req/s  p50 {p.p50_ms:7.2f}  p99 {p.p99_ms:8.2f} ms  "
              f"{'pass' if p.passes(cfg.slo_ms) else 'FAIL'}{flags}", flush=True)  # fmt: skip
        return p

    return stats.search_capacity(measure, cfg.slo_ms, start, bracket=bracket, tolerance=tolerance)


def configurations(server: str | None = None, device: str = "cpu") -> list[tuple[int, int]]:
    """(max batch, delay ms) pairs; batch 1 never waits, so it runs once, with its smallest delay."""
    batches, delays = GRIDS[device]
    grid = [(b, d) for b in batches for d in delays if b > 1 or d == min(delays)]
    if server == "torchserve":
        grid = [(b, d) for b, d in grid if b == 1 or d >= TS_MIN_DELAY_MS]
    return grid


def bracket_from(qps: float) -> tuple[float, float] | None:
    """The search bracket an earlier QPS@SLO suggests (±20-25 %), or None to search afresh."""
    return (qps * 0.8, qps * 1.25) if qps >= MIN_HINT else None


def tf_batching(batch: int, delay_ms: int, executors: int, out: Path) -> Path:
    """The shipped batching.config with the swept fields replaced (by its owner)."""
    from serving.tfserving import config

    return config.write_batching(
        out, max_execution_batch_size=batch, batch_timeout_micros=delay_ms * 1000, num_batch_threads=executors
    )


def ts_config(batch: int, delay_ms: int, executors: int, out: Path) -> Path:
    """The shipped config.properties with every model's batchSize, maxBatchDelay and workers replaced."""
    from serving.torchserve import config

    props = config.with_models(
        config.read(), batchSize=batch, maxBatchDelay=delay_ms, minWorkers=executors, maxWorkers=executors
    )
    out.write_text(config.render(props))
    return out


@contextlib.contextmanager
def started(
    server: str, batch: int, delay_ms: int, args: argparse.Namespace, run: Path
) -> Iterator[tuple[Endpoints, dict[str, Any]]]:
    """``server`` on its own free ports with this batching; yields its endpoints and its effective config."""
    from serving.native import tfserving, torchserve
    from serving.native.process import check_ports_free
    from serving.native.settings import ServingPorts

    ports = ServingPorts.free()
    run = run.resolve()  # TorchServe rejects a relative TEMP
    run.mkdir(parents=True, exist_ok=True)
    check_ports_free({"rest": ports.tfserving_rest} if server == "tfserving" else {"ts": ports.torchserve_inference})
    if server == "tfserving":
        batching = tf_batching(batch, delay_ms, args.executors, run / "batching.config")
        proc = tfserving.launcher(args.artifacts.resolve(), run, ports, batching)

        def ready() -> bool:
            return tfserving.ready(ports)
    else:
        source = ts_config(batch, delay_ms, args.executors, run / "source.properties")
        proc = torchserve.launcher(args.artifacts.resolve(), run, ports, config_source=source)

        def ready() -> bool:
            return torchserve.ready(ports)

    proc.start()
    try:
        proc.wait_until(ready, START_TIMEOUT_S)
        if server == "torchserve":
            torchserve.warm(ports)
        effective: dict[str, Any] = {}
        if server == "torchserve":
            effective = torchserve.batching(ports)
            for name, m in effective.items():
                if m["batchSize"] != batch or (batch > 1 and m["maxBatchDelay"] != delay_ms):
                    raise RuntimeError(f"TorchServe runs {name} with {m}, not batch {batch} / delay {delay_ms} ms")
        yield Endpoints.native(ports), effective
    finally:
        proc.stop()


def run_config(
    server: str, batch: int, delay_ms: int, args: argparse.Namespace, cfg: PointConfig, out: Path, hint: float
) -> dict[str, Any]:
    label = f"{server}_b{batch}_d{delay_ms}"
    with started(server, batch, delay_ms, args, out / "run" / label) as (ep, effective):
        target = BY_NAME[SERVERS[server]]
        s = measure_search(
            target, cfg, ep, out, args.seed, args.start_rate, bracket_from(hint), label, tolerance=TOLERANCE
        )
        low_cfg = dataclasses.replace(cfg, early_stop=False, max_windows=stats.STABLE_WINDOWS, min_samples=LOW_SAMPLES)
        low = run_point(target, LOW_RATE, args.seed, low_cfg, ep, out, f"{label}_low")
    at = s.at_qps
    entry = {
        "server": server,
        "max_batch": batch,
        "delay_ms": delay_ms,
        "executors": args.executors,
        "effective": effective,
        "qps": s.qps,
        "ceiling": s.ceiling,
        "valid": bool(at and at.valid),
        "low_rate": LOW_RATE,
        "low_p50_ms": low.p50_ms,
        "low_p99_ms": low.p99_ms,
        "steps": [point_dict(p, cfg.slo_ms) for p in s.steps],
        "low": point_dict(low, cfg.slo_ms),
    }
    print(
        f"  {server} batch {batch:2d} delay {delay_ms} ms: QPS@SLO {s.qps:,.0f} req/s, p50 at {LOW_RATE:.0f} req/s "
        f"{low.p50_ms:.2f} ms{'' if entry['valid'] else ' (guard tripped)'}",
        flush=True,
    )
    return entry


def confirm(
    best: dict[str, dict[str, Any]], args: argparse.Namespace, cfg: PointConfig, out: Path
) -> dict[str, dict[str, Any]]:
    """Best against best, fairly: the highest of several single draws is biased upward (and more so
    for the server with more configurations), so each server's best configuration is re-measured,
    both servers running, in ``--confirm-repeats`` interleaved searches with fresh seeds, each with a
    point at the low rate. Each server's floor (the same model behind the leanest server) is measured
    the same way in the same rotation, so the report can give every figure as a ratio to its floor."""
    names = list(best) + [LEAN_FLOOR[s] for s in best]
    found: dict[str, dict[str, list[float]]] = {n: {"qps": [], "p50": [], "p99": []} for n in names}
    low_cfg = dataclasses.replace(cfg, early_stop=False, max_windows=stats.STABLE_WINDOWS, min_samples=LOW_SAMPLES)
    floors = [BY_NAME[n] for n in names if n.startswith("floor-")]
    with contextlib.ExitStack() as stack:
        eps = {
            s: stack.enter_context(started(s, e["max_batch"], e["delay_ms"], args, out / "run" / f"confirm_{s}"))[0]
            for s, e in best.items()
        }
        floor_ep = stack.enter_context(harness.session(floors, args.artifacts, out, stack=False)).ep
        for r in range(args.confirm_repeats):
            for n in names[r % len(names) :] + names[: r % len(names)]:  # rotated, as make load's repeats
                target = BY_NAME[SERVERS[n]] if n in best else BY_NAME[n]
                hint = best[n]["qps"] if n in best else 0.0
                print(
                    f"[confirm {r + 1}/{args.confirm_repeats}] {n}"
                    + (f" max batch {best[n]['max_batch']}, delay {best[n]['delay_ms']} ms" if n in best else "")
                )
                label = f"confirm_{n}_r{r + 1}"
                ep = eps[n] if n in best else floor_ep
                search = measure_search(
                    target, cfg, ep, out, args.seed + 1 + r, args.start_rate, bracket_from(hint), label,
                    tolerance=TOLERANCE,
                )  # fmt: skip
                low = run_point(target, LOW_RATE, args.seed + 1 + r, low_cfg, ep, out, f"{label}_low")
                for key, value in (("qps", search.qps), ("p50", low.p50_ms), ("p99", low.p99_ms)):
                    found[n][key].append(value)
    result = {}
    for n, values in found.items():
        mean, lo, hi = stats.mean_ci95(values["qps"])
        result[n] = {
            "max_batch": best[n]["max_batch"] if n in best else 1,
            "delay_ms": best[n]["delay_ms"] if n in best else 0,
            "sweep_qps": best[n]["qps"] if n in best else math.nan,
            "floor": LEAN_FLOOR[n] if n in best else None,
            "repeats": values["qps"],
            "qps": mean,
            "ci95": [max(0.0, lo), hi],  # a rate is never negative
            "low_p50_ms": float(sum(values["p50"]) / len(values["p50"])),
            "low_p99_ms": float(sum(values["p99"]) / len(values["p99"])),
        }
        print(f"  {n}: QPS@SLO {mean:,.0f} req/s, 95 % CI {max(0.0, lo):,.0f}-{hi:,.0f}, repeats {values['qps']}",
              flush=True)  # fmt: skip
    return result


def reused(folder: Path) -> list[dict[str, Any]]:
    """The entries of an earlier sweep, finished (sweep.json) or cut off (sweep.partial.json)."""
    done, partial = folder / "sweep.json", folder / "sweep.partial.json"
    if done.exists():
        return list(json.loads(done.read_text())["entries"])
    if partial.exists():
        return list(json.loads(partial.read_text()))
    raise SystemExit(f"--reuse: neither {done} nor {partial} exists")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--device", choices=sorted(GRIDS), default="cpu", help="the grid: cpu, or gpu (max batch to 256)")
    p.add_argument("--slo-ms", type=float, default=SLO_MS)
    p.add_argument("--executors", type=int, default=1, help="TF batch threads = TorchServe workers per model")
    p.add_argument("--max-windows", type=int, default=stats.STABLE_WINDOWS, help="per point (default: %(default)s)")
    p.add_argument("--start-rate", type=float, default=400.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="an earlier sweep folder: keep its entries for the servers not run now (sweep.json or sweep.partial.json)",
    )
    p.add_argument(
        "--confirm-repeats",
        type=int,
        default=CONFIRM_REPEATS,
        help="re-measure each server's best configuration this often (0: skip; default: %(default)s)",
    )
    args = p.parse_args(argv)
    from serving.native.process import exit_on_sigterm

    if args.device == "gpu":
        from load_tests.runs.gpu import EXIT_NO_GPU, cuda_or_reason

        reason = cuda_or_reason()
        if reason:
            print(f"--device gpu needs an NVIDIA GPU with CUDA: {reason}. Nothing was measured.", file=sys.stderr)
            return EXIT_NO_GPU
    exit_on_sigterm()
    out = args.out or Path("reports") / time.strftime("sweep-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    cfg = PointConfig(slo_ms=args.slo_ms, max_windows=args.max_windows)
    env = machine.environment_dict("http://127.0.0.1:1")  # no gateway: the TF implementation comes from PATH
    from serving.native.tfserving import implementation

    env["tfserving"] = "stand-in (serving/tfserving_standin)" if implementation() == "standin" else "real binary"
    env["device"] = args.device
    sampler = machine.GpuSampler()
    if args.device == "gpu":  # the in-process side of "from which batch does the GPU win"
        from load_tests.runs.gpu import inproc

        env["inproc_median_us_per_call"] = inproc(args.artifacts.resolve())
    started_at = time.monotonic()
    servers = [s for s in args.servers.split(",") if s]  # "" with --reuse: only re-confirm an earlier sweep
    entries = [e for e in reused(args.reuse) if e["server"] not in servers] if args.reuse else []
    for server in servers:
        hint = 0.0
        configs = configurations(server, args.device)
        for i, (batch, delay) in enumerate(configs):
            print(f"[{server} {i + 1}/{len(configs)}] max batch {batch}, delay {delay} ms", flush=True)
            e = run_config(server, batch, delay, args, cfg, out, hint)
            entries.append(e)
            (out / "sweep.partial.json").write_text(json.dumps(entries, default=str))  # survives a crash
            hint = e["qps"] if math.isfinite(e["qps"]) else 0.0
    confirmed = confirm(best_per_server(entries), args, cfg, out) if args.confirm_repeats > 0 else {}
    env["gpu_samples"] = sampler.stop()
    method = Method(
        slo_ms=args.slo_ms,
        tolerance=TOLERANCE,
        low_rate=LOW_RATE,
        executors=args.executors,
        max_batch=GRIDS[args.device][0],
        seconds=time.monotonic() - started_at,
        reuse=str(args.reuse or ""),
    )
    path = write(out, entries, env, method, confirmed)
    print(f"report: {path}")
    print("\n".join(sweep_verdict(entries, confirmed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
