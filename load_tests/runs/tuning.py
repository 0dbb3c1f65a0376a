"""``make bench-tuning``: TorchServe's tuning, each choice measured in one run beside its floor.

Every variant is a real TorchServe on its own free ports, all running side by side with the
TorchScript floor (load_tests/servers/floor.py):

- ``before``: TorchServe as it ran here until 2026-11-28: its own log4j2 defaults (INFO, an access
  log, per-request lines), synchronous loggers, Netty's default threads (one per core), the JVM's
  default compilers and collector (C2, G1), system metrics every minute;
- ``tuned``: the shipped config.properties, log4j2.xml and the native environment
  (serving/environments.py): what ``make serve`` runs;
- one variant per remaining choice, each the tuned configuration with that one choice undone or
  changed (default Netty threads, default JVM, the worker decoding JSON, system metrics on,
  2 workers per model, OMP_NUM_THREADS=2), so each choice is shown by what it changes alone;
- ``no-batching``: tuned with batchSize 1, to show how much of the p50 is the 1 ms batch window
  (batching itself is the batching sweep's choice, not this bench's).

Each variant first gets ``WARM_POINTS`` unrecorded points at the highest rate: the JVM compiles
TorchServe's request path for minutes, and a variant must not be charged for compiling while
another is measured warm. Then, at each rate, open loop, ``REPEATS`` interleaved repeats in a
rotated order: p50 and p99 from the intended send time, the CPU each server's own process tree spent
per answered request (psutil: the other servers' idle CPU is not counted), and the log lines each
wrote per 1,000 requests. Prints one table; ``--json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from load_tests import stats
from load_tests.measure.cpu import tree_cpu_s
from load_tests.measure.machine import machine_state
from load_tests.measure.point import PointConfig, run_point
from load_tests.runs import harness
from load_tests.targets import BY_NAME, Endpoints
from mnist_serving.ports import local_url
from serving.torchserve import config

RATES = (200.0, 500.0)
REPEATS = 3
# Fixed-length points (3 windows of >= 2 s after 1 s of warm-up): the same work for every variant.
POINT = PointConfig(slo_ms=50.0, warmup_s=1.0, min_window_s=2.0, max_windows=3, early_stop=False, processes=1)
START_TIMEOUT_S = 180.0
TS = BY_NAME["torchserve"]
FLOOR = BY_NAME["floor-torchscript"]
WARM_POINTS = 2  # per variant, at the highest rate, before any measured point


@dataclass(frozen=True)
class Variant:
    """A TorchServe configuration: the shipped one with these changes."""

    name: str
    what: str
    properties: Mapping[str, str] = field(default_factory=dict)  # set in config.properties
    drop: tuple[str, ...] = ()  # keys removed from config.properties (TorchServe's default applies)
    models: Mapping[str, int] = field(default_factory=dict)  # set on every model (minWorkers, ...)
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the native environment
    own_logging: bool = False  # TorchServe's own log4j2 configuration instead of the project's

    def properties_file(self, out: Path) -> Path:
        props = {**config.without(config.read(), *self.drop), **self.properties}
        if self.models:
            props = config.with_models(props, None, **self.models)
        out.write_text(config.render(props))
        return out


# The JVM flags shipped before the tuning (C2 and G1 by default).
UNTUNED_JVM = {"vmargs": "-Xmx512m -XX:+UseContainerSupport -XX:+ExitOnOutOfMemoryError"}
NETTY_THREADS = ("number_of_netty_threads", "netty_client_threads")
VARIANTS = (
    Variant(
        "before", "as shipped until 2026-11-28", properties=UNTUNED_JVM,
        drop=("async_logging", *NETTY_THREADS, "disable_system_metrics", "decode_input_request"), own_logging=True,
    ),
    Variant("tuned", "as shipped now (config.properties, log4j2.xml, OMP_NUM_THREADS=1)"),
    Variant("netty-default", "tuned, but Netty's default threads (one per core, both pools)", drop=NETTY_THREADS),
    Variant("jvm-default", "tuned, but the JVM's default compilers and collector (C2, G1)", properties=UNTUNED_JVM),
    Variant("worker-decodes", "tuned, but TorchServe's worker decodes JSON (decode_input_request default)",
            drop=("decode_input_request",)),
    Variant("system-metrics", "tuned, but system metrics on (a Python process every minute)",
            drop=("disable_system_metrics",)),
    Variant("2-workers", "tuned, but 2 workers per model", models={"minWorkers": 2, "maxWorkers": 2}),
    Variant("omp-2", "tuned, but OMP_NUM_THREADS=2", env={"OMP_NUM_THREADS": "2"}),
    # Not a tuning choice (the batching sweep chooses batching): how much of p50 is the batch window.
    Variant("no-batching", "tuned, but batchSize 1 (no 1 ms batch window)", models={"batchSize": 1}),
)  # fmt: skip


@contextlib.contextmanager
def torchserve_variant(variant: Variant, artifacts: Path, run: Path) -> Iterator[tuple[str, psutil.Process, Path]]:
    """TorchServe as ``variant`` on free ports: (URL, its root process, its log folder)."""
    from serving.native import torchserve
    from serving.native.settings import ServingPorts

    ports = ServingPorts.free()
    run.mkdir(parents=True, exist_ok=True)
    source = variant.properties_file(run / "source.properties")
    log_config = None if variant.own_logging else config.LOG_CONFIG
    proc = torchserve.launcher(
        artifacts, run, ports, config_source=source, log_config=log_config, env_overrides=variant.env
    )
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


def bench(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    state_before = machine_state()  # the load average before the servers start
    variants = [v for v in VARIANTS if v.name in args.variants]
    rows: dict[tuple[str, float], list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[str, psutil.Process, Path]] = {}
        for variant in variants:
            print(f"starting TorchServe {variant.name} ({variant.what}) ...", flush=True)
            servers[variant.name] = stack.enter_context(
                torchserve_variant(variant, args.artifacts.resolve(), out / variant.name)
            )
        session = stack.enter_context(harness.session([FLOOR], args.artifacts, out, stack=False))
        floor_ep = session.ep
        floor_proc = psutil.Process(floor_ep.pids[FLOOR.server or ""])  # the one this run started

        def measure(name: str, rate: float, seed: int, tag: str) -> tuple[stats.Point, float]:
            if name == "floor":
                target, ep, proc = FLOOR, floor_ep, floor_proc
            else:
                url, proc, _ = servers[name]
                target, ep = TS, Endpoints().with_url(TS, url)
            cpu0 = tree_cpu_s(proc)
            point = run_point(target, rate, seed, POINT, ep, out, tag)
            return point, tree_cpu_s(proc) - cpu0

        order = [*servers, "floor"]
        print(f"warming each variant: {args.warm_points} points at {max(args.rates):.0f}/s ...", flush=True)
        for name in order:
            for i in range(args.warm_points):
                measure(name, max(args.rates), args.seed + 1000 + i, f"warm_{name}_{i}")
        lines_before = {name: log_lines(run) for name, (_, _, run) in servers.items()}
        answered = dict.fromkeys(servers, 0)
        for repeat in range(args.repeats):
            for rate in args.rates:
                for name in order:
                    point, cpu_s = measure(name, rate, args.seed + repeat, f"{name}_{rate:.0f}_{repeat}")
                    n = int(point.extra.get("answered_total", 0))
                    if name in answered:
                        answered[name] += n
                    cpu_us = cpu_s / n * 1e6 if n else math.nan
                    rows.setdefault((name, rate), []).append(
                        {"p50_ms": point.p50_ms, "p99_ms": point.p99_ms, "failed": point.failed,
                         "cpu_us_per_req": cpu_us, "valid": point.valid, "reasons": list(point.invalid)}
                    )  # fmt: skip
                    print(f"  repeat {repeat + 1} {rate:5.0f}/s {name:14}: p50 {point.p50_ms:6.2f} ms, "
                          f"p99 {point.p99_ms:6.2f} ms, {cpu_us:7.0f} µs CPU/req, {point.failed} failed",
                          flush=True)  # fmt: skip
            order = order[1:] + order[:1]  # rotate: no variant always goes first
        lines = {name: log_lines(run) - lines_before[name] for name, (_, _, run) in servers.items()}
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**state_before, "load_avg_after": Path("/proc/loadavg").read_text().split()[:3]},
        "rates": list(args.rates),
        "repeats": args.repeats,
        "warm_points": args.warm_points,
        "variants": {v.name: v.what for v in variants},
        "points": {f"{v}@{r:.0f}": pts for (v, r), pts in rows.items()},
        "log_lines_per_1000": {v: lines[v] / answered[v] * 1000 if answered[v] else math.nan for v in lines},
    }
    print_table(result)
    return result


def _mean(pts: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Mean and half the range over the repeats."""
    values = np.asarray([p[key] for p in pts], dtype=float)
    return float(values.mean()), float((values.max() - values.min()) / 2)


def table(result: dict[str, Any]) -> str:
    """The Markdown table of a run (docs/load-testing.md shows the committed one)."""
    names = [*result["variants"], "floor"]
    lines = [
        "| rate | variant | p50 ms | p99 ms | CPU µs/req | p50 / floor | CPU / before | log lines / 1,000 req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    logs = result["log_lines_per_1000"]
    for rate in result["rates"]:
        pts = {v: result["points"][f"{v}@{rate:.0f}"] for v in names}
        floor_p50 = _mean(pts["floor"], "p50_ms")[0]
        base = _mean(pts["before"], "cpu_us_per_req")[0] if "before" in pts else math.nan
        for v in names:
            p50, p50_r = _mean(pts[v], "p50_ms")
            p99, p99_r = _mean(pts[v], "p99_ms")
            cpu, cpu_r = _mean(pts[v], "cpu_us_per_req")
            ratio = f"{cpu / base:.2f}x" if v != "floor" else "—"
            log = f"{logs[v]:,.0f}" if v in logs else "—"
            lines.append(f"| {rate:,.0f}/s | {v} | {p50:.2f} ± {p50_r:.2f} | {p99:.2f} ± {p99_r:.2f} | "
                         f"{cpu:,.0f} ± {cpu_r:,.0f} | {p50 / floor_p50:.2f}x | {ratio} | {log} |")  # fmt: skip
    return "\n".join(lines)


def print_table(result: dict[str, Any]) -> None:
    print()
    print(table(result))
    print("\n(± is half the range over the repeats; one run on one machine: compare within it)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=list(RATES))
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--warm-points", type=int, default=WARM_POINTS)
    p.add_argument(
        "--variants", type=lambda v: v.split(","), default=[v.name for v in VARIANTS],
        help="comma-separated subset of: " + ", ".join(v.name for v in VARIANTS),
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--report", type=Path, default=None, help="report folder (default: reports/tuning-<time>)")
    args = p.parse_args(argv)
    from serving.native.process import exit_on_sigterm

    exit_on_sigterm()
    result = bench(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    from load_tests.reports.bench import BenchReport, finish

    report = BenchReport(
        title="TorchServe's tuning, each choice measured (`make bench-tuning`)",
        verdict=verdict(result),
        body=[table(result), "", "± is half the range over the repeats; one run on one machine: compare within it."],
        figures=result,
    )
    finish(harness.folder(args.report, "tuning-"), report, lambda png: plot(result, png))
    return 0


def verdict(result: dict[str, Any]) -> list[str]:
    """Whether the points held the guard, then what the tuning did to CPU per request and p50 at each rate."""
    pts = [p for v in result["points"].values() for p in v]
    bad = [p for p in pts if not p.get("valid", True) or p["failed"]]
    lines = [
        f"VERDICT: {len(pts) - len(bad)} of {len(pts)} points valid"
        + (f"; {len(bad)} tripped the generator guard or had failures (kept in the means)" if bad else "")
    ]
    if "before" not in result["variants"] or "tuned" not in result["variants"]:
        return lines
    for rate in result["rates"]:
        before, tuned = result["points"][f"before@{rate:.0f}"], result["points"][f"tuned@{rate:.0f}"]
        (cb, rb), (ct, rt) = _mean(before, "cpu_us_per_req"), _mean(tuned, "cpu_us_per_req")
        apart = abs(ct - cb) > rb + rt
        lines.append(
            f"  {rate:,.0f}/s: tuned {ct / cb:.2f}x before's CPU per request ({ct:,.0f} vs {cb:,.0f} µs; the ranges "
            + ("are apart)" if apart else "overlap: not a measured difference)")
        )
    return lines


def plot(result: dict[str, Any], png: Path) -> None:
    import matplotlib.pyplot as plt

    from load_tests.reports import plots

    names = [*result["variants"], "floor"]
    fig, (cpu, p50) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, rate in enumerate(result["rates"]):
        x = np.arange(len(names)) + i * 0.8 / len(result["rates"])
        for ax, key in ((cpu, "cpu_us_per_req"), (p50, "p50_ms")):
            m = [_mean(result["points"][f"{v}@{rate:.0f}"], key) for v in names]
            ax.bar(x, [a for a, _ in m], width=0.8 / len(result["rates"]), yerr=[r for _, r in m], capsize=2,
                   label=f"{rate:,.0f}/s")  # fmt: skip
    for ax, label in ((cpu, "CPU µs per request"), (p50, "p50 (ms)")):
        ax.set_xticks(np.arange(len(names)) + 0.4 - 0.4 / len(result["rates"]))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    plots.save(fig, png)


if __name__ == "__main__":
    sys.exit(main())
