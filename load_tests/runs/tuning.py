"""``make bench-tuning``: TorchServe before and after its tuning, measured in one run beside its floor.

- **before**: how TorchServe ran here until 2026-11-28: its own log4j2 defaults (INFO, an access
  log, per-request lines from the frontend and the workers) with synchronous loggers;
- **after**: the project's ``serving/torchserve/log4j2.xml`` (warnings and errors only) and
  ``async_logging=true``; every other setting (config.properties) is the same in both.

Both run side by side, each on its own free ports, with the TorchScript floor
(load_tests/servers/floor.py) beside them. At each rate, open loop, ``REPEATS`` interleaved repeats
in a rotated order: p50 and p99 from the intended send time, the CPU each server's own process tree
spent per answered request (psutil, so the other TorchServe's idle CPU is not counted), and the log
lines each wrote per 1,000 requests. Prints one table; ``--json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from load_tests.measure.cpu import tree_cpu_s
from load_tests.measure.point import PointConfig, run_point
from load_tests.reports.environment import machine_state
from load_tests.runs.stack import local_servers
from load_tests.targets import BY_NAME, Endpoints
from mnist_serving.ports import local_url

RATES = (200.0, 500.0)
REPEATS = 3
# Fixed-length points (3 windows of >= 2 s after 1 s of warm-up): the same work for every variant.
POINT = PointConfig(slo_ms=50.0, warmup_s=1.0, min_window_s=2.0, max_windows=3, early_stop=False, processes=1)
START_TIMEOUT_S = 180.0
TS = BY_NAME["torchserve"]
FLOOR = BY_NAME["floor-torchscript"]


@contextlib.contextmanager
def torchserve_variant(name: str, artifacts: Path, run: Path) -> Iterator[tuple[str, psutil.Process, Path]]:
    """TorchServe as ``name`` ("before" or "after") on free ports: (URL, its root process, its log folder)."""
    from serving.native import torchserve
    from serving.native.settings import ServingPorts
    from serving.torchserve import config

    ports = ServingPorts.free()
    run.mkdir(parents=True, exist_ok=True)
    props = config.read() if name == "after" else config.without(config.read(), "async_logging")
    source = run / "source.properties"
    source.write_text(config.render(props))
    log_config = config.LOG_CONFIG if name == "after" else None
    proc = torchserve.launcher(artifacts, run, ports, config_source=source, log_config=log_config)
    proc.start()
    try:
        proc.wait_until(lambda: torchserve.ready(ports), START_TIMEOUT_S)
        torchserve.warm(ports)
        assert proc.pid is not None
        yield local_url(ports.torchserve_inference), psutil.Process(proc.pid), run
    finally:
        proc.stop()


def log_lines(run: Path) -> int:
    files = [*(run / "torchserve-logs").glob("*.log"), run / "torchserve.log"]
    return sum(len(f.read_bytes().splitlines()) for f in files if f.exists())


def _floor_process() -> psutil.Process:
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "load_tests.servers.floor" in cmd and "torchscript" in cmd:
            return p
    raise RuntimeError("the TorchScript floor is not running")


def bench(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    rows: dict[tuple[str, float], list[dict[str, float]]] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[str, psutil.Process, Path]] = {}
        for name in ("before", "after"):
            print(f"starting TorchServe {name} ...", flush=True)
            servers[name] = stack.enter_context(torchserve_variant(name, args.artifacts.resolve(), out / name))
        floor_ep = stack.enter_context(local_servers([FLOOR], args.artifacts, out / "run", Endpoints()))
        floor_proc = _floor_process()
        lines_before = {name: log_lines(run) for name, (_, _, run) in servers.items()}
        answered = dict.fromkeys(servers, 0)
        order = ["before", "after", "floor"]
        for repeat in range(args.repeats):
            for rate in args.rates:
                for variant in order:
                    if variant == "floor":
                        target, ep, proc = FLOOR, floor_ep, floor_proc
                    else:
                        url, proc, _ = servers[variant]
                        target, ep = TS, Endpoints().with_url(TS, url)
                    cpu0 = tree_cpu_s(proc)
                    point = run_point(
                        target, rate, args.seed + repeat, POINT, ep, out, f"{variant}_{rate:.0f}_{repeat}"
                    )
                    cpu_s = tree_cpu_s(proc) - cpu0
                    n = int(point.extra.get("answered_total", 0))
                    if variant in answered:
                        answered[variant] += n
                    rows.setdefault((variant, rate), []).append(
                        {"p50_ms": point.p50_ms, "p99_ms": point.p99_ms, "failed": point.failed,
                         "cpu_us_per_req": cpu_s / n * 1e6 if n else math.nan}
                    )  # fmt: skip
                    print(f"  repeat {repeat + 1} {rate:5.0f}/s {variant:6}: p50 {point.p50_ms:6.2f} ms, "
                          f"p99 {point.p99_ms:6.2f} ms, {cpu_s / n * 1e6 if n else math.nan:7.0f} µs CPU/req, "
                          f"{point.failed} failed", flush=True)  # fmt: skip
            order = order[1:] + order[:1]  # rotate: no variant always goes first
        lines = {name: log_lines(run) - lines_before[name] for name, (_, _, run) in servers.items()}
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_state(), "load_avg_after": Path("/proc/loadavg").read_text().split()[:3]},
        "rates": list(args.rates),
        "repeats": args.repeats,
        "points": {f"{v}@{r:.0f}": pts for (v, r), pts in rows.items()},
        "log_lines_per_1000": {v: lines[v] / answered[v] * 1000 if answered[v] else math.nan for v in lines},
    }
    print_table(result)
    return result


def _mean(pts: list[dict[str, float]], key: str) -> tuple[float, float]:
    """Mean and half the range over the repeats."""
    values = np.asarray([p[key] for p in pts], dtype=float)
    return float(values.mean()), float((values.max() - values.min()) / 2)


def print_table(result: dict[str, Any]) -> None:
    print("\n| rate | variant | p50 ms | p99 ms | CPU µs/req | p50 / floor | CPU / before |")
    print("|---|---|---|---|---|---|---|")
    for rate in result["rates"]:
        pts = {v: result["points"][f"{v}@{rate:.0f}"] for v in ("before", "after", "floor")}
        floor_p50 = _mean(pts["floor"], "p50_ms")[0]
        before_cpu = _mean(pts["before"], "cpu_us_per_req")[0]
        for v in ("before", "after", "floor"):
            p50, p50_r = _mean(pts[v], "p50_ms")
            p99, p99_r = _mean(pts[v], "p99_ms")
            cpu, cpu_r = _mean(pts[v], "cpu_us_per_req")
            cpu_ratio = f"{cpu / before_cpu:.2f}x" if v != "floor" else "—"
            print(f"| {rate:,.0f}/s | {v} | {p50:.2f} ± {p50_r:.2f} | {p99:.2f} ± {p99_r:.2f} | "
                  f"{cpu:,.0f} ± {cpu_r:,.0f} | {p50 / floor_p50:.2f}x | {cpu_ratio} |")  # fmt: skip
    logs = result["log_lines_per_1000"]
    print(f"\nlog lines per 1,000 requests: before {logs['before']:,.0f}, after {logs['after']:,.1f}")
    print("(± is half the range over the repeats; one run on one machine: compare within it)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=list(RATES))
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    result = bench(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
