"""One measured point: a headless open-loop Locust run at one Poisson rate against one target (one
process, or several sharing the schedule), with the generator guard and the servers' metrics around
it, analysed into a ``stats.Point``. The runner hands the generator a ``RunSpec`` and reads back one
``Recording`` per generator process."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from load_tests import stats
from load_tests.contracts import DEFAULT_SPIN_US, Recording, RunSpec
from load_tests.measure import cpu, scrape
from load_tests.targets import Endpoints, Target

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "load_tests" / "generator" / "locustfile.py"
LOCUST_START_S = 15.0  # generous bound on Locust's own start-up, added to a run's hard timeout
# The split: enough generator processes that none does more than this share of a core's work (its
# precise waiting not counted), from the calibration's CPU per request.
TARGET_PROCESS_SHARE = 0.60


def locust_argv(users: int, run_time: str, stop_timeout_s: int, user_class: str, *extra: str) -> list[str]:
    """A headless Locust run of ``user_class`` with this repository's locustfile (quiet: summary only)."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", run_time, "--stop-timeout", str(stop_timeout_s),
        *extra, "--only-summary", "--loglevel", "WARNING", user_class,
    ]  # fmt: skip


def generator_cores() -> int:
    """Cores the generator may use: its pinned share on a big machine, else all but one (the servers')."""
    pins = cpu.pinning()
    return len(pins[0]) if pins else max(1, (os.cpu_count() or 1) - 1)


def processes_for(rate: float, work_us_per_req: float, cap: int | None = None) -> int:
    """Generator processes for ``rate``: none above TARGET_PROCESS_SHARE of a core's work, at most ``cap``."""
    cap = cap or generator_cores()
    if not math.isfinite(work_us_per_req) or work_us_per_req <= 0:
        return 1
    return max(1, min(cap, math.ceil(rate * work_us_per_req * 1e-6 / TARGET_PROCESS_SHARE)))


@dataclass(frozen=True)
class PointConfig:
    slo_ms: float = 10.0
    warmup_s: float = 1.0  # intended-time seconds excluded before the first window
    min_window_s: float = 2.0
    max_windows: int = 6  # the cap: a point not stable by then is marked unstable
    early_stop: bool = True  # stop at the first stable windows (False: run all max_windows)
    processes: int = 0  # generator processes; 0: as many as the rate needs (work_us_per_req)
    min_samples: int = stats.MIN_STEP_SAMPLES  # requests over the measured windows
    spin_us: float = DEFAULT_SPIN_US  # precise wait before each send (0: gevent's timer alone)
    work_us_per_req: float = math.nan  # the generator's work per request (calibration), for the split

    def processes_at(self, rate: float) -> int:
        return self.processes if self.processes > 0 else processes_for(rate, self.work_us_per_req)


def run_point(
    target: Target, rate: float, seed: int, cfg: PointConfig, ep: Endpoints, out: Path, tag: str
) -> stats.Point:
    window_s = stats.window_seconds(rate, cfg.min_window_s, cfg.min_samples)
    run_s = cfg.warmup_s + window_s * cfg.max_windows + 0.01  # the schedule's length (intended time)
    prefix = out / "exact" / tag
    processes = cfg.processes_at(rate)
    spec = RunSpec(
        rate=rate, seed=seed, duration_s=run_s, warmup_s=cfg.warmup_s, window_s=window_s if cfg.early_stop else 0.0,
        slo_ms=cfg.slo_ms, processes=processes, spin_us=cfg.spin_us, out=str(prefix),
    )  # fmt: skip
    env = {**os.environ, **ep.urls, **spec.to_env()}
    for var in ("LOAD_RATE", "LOAD_SEED", "LOAD_WINDOW_S", "LOAD_WARMUP_S", "LOAD_DURATION_S", "LOAD_EXACT_OUT"):
        env.pop(var, None)  # the spec is the whole contract
    # -t is a cap only: the open-loop user (or the master) ends the run after its schedule.
    extra = ["--processes", str(processes)] if processes > 1 else []
    cmd = locust_argv(processes, f"{math.ceil(run_s + LOCUST_START_S)}s", 2, target.open_user_class, *extra)
    pins = cpu.pinning()
    if pins:
        cmd = ["taskset", "-c", ",".join(map(str, pins[0])), *cmd]
    servers = [s for s in (target.server, "gateway" if target.via_gateway else None) if s]
    cpu_before = {s: cpu.server_cpu_s(s) for s in servers}
    metrics = (ep.tf_metrics, ep.ts_metrics, ep.gateway_metrics if target.via_gateway else None)
    before = scrape.snapshot(*metrics)
    started = time.monotonic()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with (out / "locust.log").open("ab") as log:
        subprocess.run(
            cmd, env=env, cwd=REPO, check=False, timeout=run_s + 2 * LOCUST_START_S + 30,
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    wall = time.monotonic() - started
    after = scrape.snapshot(*metrics)
    cpu_after = {s: cpu.server_cpu_s(s) for s in servers}
    recordings = [r for r in Recording.read_all(prefix) if r.sent]
    point = analyse(recordings, target.name, rate, cfg.slo_ms, window_s)
    answered = point.extra.get("answered_total", 0)
    point.extra.update(
        window_s=window_s,
        wall_s=wall,
        server_cpu_us_per_req={
            s: (cpu_after[s] - cpu_before[s]) / answered * 1e6 if answered else math.nan for s in servers
        },
        breakdown=scrape.breakdown(before, after, target.server, via_gateway=target.via_gateway)
        if target.server in ("tfserving", "torchserve")
        else None,
    )
    return point


def analyse(recordings: list[Recording], name: str, rate: float, slo_ms: float, window_s: float) -> stats.Point:
    """A point from one run's recordings (one per generator process, merged by sequence number):
    windows, stability, p50/p99 from the intended send time over the measured windows (the last
    stable ones, else all), and the generator guard (the busiest process counts)."""
    tables = [stats.open_loop_table(r.sent.get(name, {}), r.done.get(name, {})) for r in recordings]
    if not tables:
        return stats.Point(rate, math.nan, math.nan, 0.0, 0, 0, False, 0, ["the generator recorded nothing"])
    warmup_s = recordings[0].warmup_s
    table = stats.merge_tables(tables)
    windows = stats.split_windows(table["t"], table["ms"], table["ok"], warmup_s, window_s)
    is_stable = stats.stable(windows)
    measured = windows[-stats.STABLE_WINDOWS :] if is_stable else windows
    if not measured:
        return stats.Point(rate, math.nan, math.nan, 0.0, 0, 0, False, 0, ["no whole window was measured"])
    lo, hi = measured[0].start_s, measured[-1].start_s + window_s
    sel = (table["t"] >= lo) & (table["t"] < hi)
    lat, ok, lag = table["ms"][sel], table["ok"][sel], table["lag_ms"][sel]
    finite_lag = lag[np.isfinite(lag)]
    guards = [guard(r, lo, hi) for r in recordings]
    work_share = max(g.work_share for g in guards)
    samples = int(sel.sum())
    invalid = stats.invalid_reasons(work_share, guards[0].idle, _pct(finite_lag, 99), slo_ms)
    point = stats.Point(
        rate=rate,
        p50_ms=stats.percentile_ms(lat, 50),
        p99_ms=stats.percentile_ms(lat, 99),
        throughput=int(ok.sum()) / (hi - lo),
        samples=samples,
        failed=int((~ok).sum()),
        stable=is_stable,
        windows=len(windows),
        invalid=invalid,
    )
    point.extra.update(
        generator_core_share=max(g.cpu_share for g in guards),  # work and precise waiting
        generator_work_share=work_share,  # what the guard judges
        generator_waiting_share=max(g.waiting_share for g in guards),
        generator_processes=len(recordings),
        generator_cpu_us_per_req=sum(g.cpu_s for g in guards) / max(1, samples) * 1e6,
        generator_work_us_per_req=sum(g.cpu_s - g.waiting_s for g in guards) / max(1, samples) * 1e6,
        machine_idle=guards[0].idle,
        machine_steal=guards[0].steal,
        send_lag_p50_ms=_pct(finite_lag, 50),
        send_lag_p99_ms=_pct(finite_lag, 99),
        answered_total=int(table["ok"].sum()),
        batch=scrape.batch_from_requests(table["batch"][sel]),
        window_throughput=[w.throughput for w in windows],
        window_p99_ms=[w.p99_ms for w in windows],
    )
    return point


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


@dataclass(frozen=True)
class Guard:
    """One generator process over the measured span: its CPU, the part spent waiting precisely, the machine."""

    cpu_s: float
    waiting_s: float
    wall_s: float
    idle: float
    steal: float

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def waiting_share(self) -> float:
        return self.waiting_s / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def work_share(self) -> float:
        return (self.cpu_s - self.waiting_s) / self.wall_s if self.wall_s > 0 else math.nan


def guard(rec: Recording, lo_s: float, hi_s: float) -> Guard:
    """The marks closest inside the measured span [lo_s, hi_s) of intended time."""
    marks, origin = rec.marks, rec.origin
    if origin is None or len(marks) < 2:
        return Guard(math.nan, math.nan, math.nan, math.nan, math.nan)
    rel = [(m[0] - origin, m) for m in marks]
    inside = [m for t, m in rel if lo_s <= t <= hi_s] or [m for _, m in rel]
    a, b = inside[0], inside[-1]
    if b[0] <= a[0]:
        a, b = marks[0], marks[-1]
    busy, idle, steal = b[2] - a[2], b[3] - a[3], b[4] - a[4]
    total = busy + idle + steal
    waiting = (b[5] - a[5]) if len(a) > 5 and len(b) > 5 else 0.0
    return Guard(
        cpu_s=b[1] - a[1],
        waiting_s=waiting,
        wall_s=b[0] - a[0],
        idle=idle / total if total else math.nan,
        steal=steal / total if total else math.nan,
    )
