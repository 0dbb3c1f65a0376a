"""One measured point: a headless open-loop Locust run at one Poisson rate against one target, with
the generator guard and the servers' metrics around it, analysed into a ``stats.Point``."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from load_tests import guard, scrape, stats
from load_tests.targets import Target

REPO = Path(__file__).resolve().parent.parent
LOCUST_START_S = 15.0  # generous bound on Locust's own start-up, added to a run's hard timeout


def locust_argv(users: int, run_time: str, stop_timeout_s: int, user_class: str, *extra: str) -> list[str]:
    """A headless Locust run of ``user_class`` with this repository's locustfile (quiet: summary only)."""
    return [
        sys.executable, "-m", "locust", "-f", str(REPO / "load_tests" / "locustfile.py"), "--headless",
        "-u", str(users), "-r", str(users), "-t", run_time, "--stop-timeout", str(stop_timeout_s),
        *extra, "--only-summary", "--loglevel", "WARNING", user_class,
    ]  # fmt: skip


@contextlib.contextmanager
def native_stack(artifacts: Path, run_dir: Path, ports: Any) -> Iterator[None]:
    """The native stack on ``ports``: the one already answering, else started here and stopped after."""
    from serving.native.stack import ServingStack

    with contextlib.suppress(httpx.HTTPError):
        if httpx.get(f"http://127.0.0.1:{ports.gateway}/readyz", timeout=2).status_code == 200:
            print("using the stack that is already running", flush=True)
            yield
            return
    print("starting the native stack ...", flush=True)
    with contextlib.ExitStack() as es:
        stack = ServingStack(artifacts, run_dir, ports, with_gateway=True)
        stack.start()
        es.callback(stack.stop)
        yield


@dataclass(frozen=True)
class Endpoints:
    urls: dict[str, str]  # target host env var -> base URL (gRPC: host:port)
    tf_metrics: str
    ts_metrics: str
    gateway_metrics: str | None = None

    @classmethod
    def native(cls, ports: Any) -> Endpoints:
        """The native stack's addresses (``serving.native.settings.ServingPorts``)."""
        return cls(
            urls={
                "TFSERVING_URL": f"http://127.0.0.1:{ports.tfserving_rest}",
                "TORCHSERVE_URL": f"http://127.0.0.1:{ports.torchserve_inference}",
                "GATEWAY_URL": f"http://127.0.0.1:{ports.gateway}",
                "TFSERVING_GRPC_ADDRESS": f"127.0.0.1:{ports.tfserving_grpc}",
                "TORCHSERVE_GRPC_ADDRESS": f"127.0.0.1:{ports.torchserve_grpc_inference}",
            },
            tf_metrics=f"http://127.0.0.1:{ports.tfserving_rest}/monitoring/prometheus/metrics",
            ts_metrics=f"http://127.0.0.1:{ports.torchserve_metrics}/metrics",
            gateway_metrics=f"http://127.0.0.1:{ports.gateway}/metrics",
        )


@dataclass(frozen=True)
class PointConfig:
    slo_ms: float = 10.0
    warmup_s: float = 1.0  # intended-time seconds excluded before the first window
    min_window_s: float = 2.0
    max_windows: int = 6  # the cap: a point not stable by then is marked unstable
    early_stop: bool = True  # stop at the first stable windows (False: run all max_windows)
    processes: int = 1  # Locust processes (--processes: forked workers, one open-loop user each)
    min_samples: int = stats.MIN_STEP_SAMPLES  # requests over the measured windows


def run_point(
    target: Target, rate: float, seed: int, cfg: PointConfig, ep: Endpoints, out: Path, tag: str
) -> stats.Point:
    window_s = stats.window_seconds(rate, cfg.min_window_s, cfg.min_samples)
    run_s = cfg.warmup_s + window_s * cfg.max_windows + 0.01  # the schedule's length (intended time)
    exact = out / "exact" / tag
    exact.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **ep.urls,
        "LOAD_RATE": f"{rate:.3f}",
        "LOAD_SEED": str(seed),
        # Early stop needs every sample in one process; with workers the run takes all windows.
        "LOAD_WINDOW_S": f"{window_s:.3f}" if cfg.early_stop and cfg.processes == 1 else "0",
        "LOAD_WARMUP_S": f"{cfg.warmup_s:.3f}",
        "LOAD_SLO_MS": str(cfg.slo_ms),
        "LOAD_EXACT_OUT": str(exact),
        "LOAD_DURATION_S": f"{run_s:.3f}",
    }
    # -t is a cap only: the open-loop user ends the run after its schedule.
    processes = ["--processes", str(cfg.processes)] if cfg.processes > 1 else []
    cmd = locust_argv(cfg.processes, f"{math.ceil(run_s + LOCUST_START_S)}s", 2, target.open_user_class, *processes)
    cores = guard.pinning()
    if cores:
        cmd = ["taskset", "-c", ",".join(map(str, cores[0])), *cmd]
    servers = [s for s in (target.server, "gateway" if target.via_gateway else None) if s]
    cpu_before = {s: guard.server_cpu_s(s) for s in servers}
    before = scrape.snapshot(ep.tf_metrics, ep.ts_metrics, ep.gateway_metrics if target.via_gateway else None)
    started = time.monotonic()
    with (out / "locust.log").open("ab") as log:
        subprocess.run(
            cmd, env=env, cwd=REPO, check=False, timeout=run_s + 2 * LOCUST_START_S + 30,
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    wall = time.monotonic() - started
    after = scrape.snapshot(ep.tf_metrics, ep.ts_metrics, ep.gateway_metrics if target.via_gateway else None)
    cpu_after = {s: guard.server_cpu_s(s) for s in servers}
    datas = [orjson.loads(f.read_bytes()) for f in sorted(exact.parent.glob(f"{exact.name}.*.json"))]
    point = analyse([d for d in datas if d.get("sent")], target.name, rate, cfg, window_s)
    answered = point.extra.get("answered_total", 0)
    point.extra.update(
        window_s=window_s,
        wall_s=wall,
        server_cpu_us_per_req={
            s: (cpu_after[s] - cpu_before[s]) / answered * 1e6 if answered else math.nan for s in servers
        },
        breakdown=scrape.breakdown(before, after, target.server, via_gateway=target.via_gateway)
        if target.server
        else None,
    )
    return point


def analyse(datas: list[dict[str, Any]], name: str, rate: float, cfg: PointConfig, window_s: float) -> stats.Point:
    """A point from one run's exact files (one per generator process): windows, stability, p50/p99
    from the intended send time over the measured windows (the last stable ones, else all), and the
    generator guard (the busiest process counts)."""
    tables = [stats.open_loop_table(d.get("sent", {}).get(name, []), d.get("done", {}).get(name, {})) for d in datas]
    table = {k: np.concatenate([t[k] for t in tables]) for k in ("t", "ms", "lag_ms", "ok", "batch")} if tables else {}
    if not tables:
        return stats.Point(rate, math.nan, math.nan, 0.0, 0, 0, False, 0, ["the generator recorded nothing"])
    windows = stats.split_windows(table["t"], table["ms"], table["ok"], cfg.warmup_s, window_s)
    is_stable = stats.stable(windows)
    measured = windows[-stats.STABLE_WINDOWS :] if is_stable else windows
    if not measured:
        return stats.Point(rate, math.nan, math.nan, 0.0, 0, 0, False, 0, ["no whole window was measured"])
    lo, hi = measured[0].start_s, measured[-1].start_s + window_s
    sel = (table["t"] >= lo) & (table["t"] < hi)
    lat, ok, lag = table["ms"][sel], table["ok"][sel], table["lag_ms"][sel]
    lag_p99 = float(np.nanpercentile(lag, 99)) if np.isfinite(lag).any() else math.nan
    guards = [_guard(d, lo, hi) for d in datas]
    share = max(g[0] for g in guards)
    idle, steal = guards[0][1], guards[0][2]
    gen_cpu = sum(g[3] for g in guards)
    answered = int(ok.sum())
    invalid = stats.invalid_reasons(share, idle, lag_p99, cfg.slo_ms)
    point = stats.Point(
        rate=rate,
        p50_ms=stats.percentile_ms(lat, 50),
        p99_ms=stats.percentile_ms(lat, 99),
        throughput=answered / (hi - lo),
        samples=int(sel.sum()),
        failed=int((~ok).sum()),
        stable=is_stable,
        windows=len(windows),
        invalid=invalid,
    )
    point.extra.update(
        generator_core_share=share,
        generator_processes=len(datas),
        generator_cpu_us_per_req=gen_cpu / max(1, int(sel.sum())) * 1e6,
        machine_idle=idle,
        machine_steal=steal,
        send_lag_p50_ms=float(np.nanpercentile(lag, 50)) if np.isfinite(lag).any() else math.nan,
        send_lag_p99_ms=lag_p99,
        answered_total=int(table["ok"].sum()),
        batch=scrape.batch_from_requests(table["batch"][sel]),
        window_throughput=[w.throughput for w in windows],
        window_p99_ms=[w.p99_ms for w in windows],
    )
    return point


def _guard(data: dict[str, Any], lo_s: float, hi_s: float) -> tuple[float, float, float, float]:
    """(generator share of one core, machine idle share, steal share, generator CPU s) between the
    marks closest inside the measured span [lo_s, hi_s) of intended time."""
    marks, origin = data.get("marks") or [], data.get("origin")
    if origin is None or len(marks) < 2:
        return math.nan, math.nan, math.nan, math.nan
    rel = [(m[0] - origin, m) for m in marks]
    inside = [m for t, m in rel if lo_s <= t <= hi_s] or [m for _, m in rel]
    a, b = inside[0], inside[-1]
    if b[0] <= a[0]:
        a, b = marks[0], marks[-1]
    wall = b[0] - a[0]
    gen = b[1] - a[1]
    busy, idle, steal = b[2] - a[2], b[3] - a[3], b[4] - a[4]
    total = busy + idle + steal
    return (
        gen / wall if wall > 0 else math.nan,
        idle / total if total else math.nan,
        steal / total if total else math.nan,
        gen,
    )
