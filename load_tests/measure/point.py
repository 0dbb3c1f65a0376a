"""One measured point: a headless open-loop Locust run at one Poisson rate against one target (one
process, or several sharing the schedule), with the generator guard and the servers' metrics around
it, analysed into a ``stats.Point`` (``record`` types it for results.json). The runner hands the
generator a ``RunSpec`` and reads back one ``Recording`` per generator process."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from load_tests import results, stats
from load_tests.contracts import DEFAULT_SENDER, DEFAULT_SPIN_US, SLO_MS, Recording, RunSpec
from load_tests.measure import cpu, scrape
from load_tests.targets import Endpoints, Target

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "load_tests" / "generator" / "locustfile.py"
LOCUST_START_S = 15.0  # generous bound on Locust's own start-up, added to a run's hard timeout
# The generator runs at the lowest real-time priority (SCHED_RR 1, via chrt) where the machine allows
# it: above every normal process, so a send that falls due wakes it at once instead of waiting out a
# server thread's time slice (on 2 shared cores that wait, not the generator, set the send lag). It
# needs ~20-40 % of a core; the kernel keeps 5 % of each second for normal processes whatever runs
# real-time (sched_rt_runtime_us), and the guard flags a generator above 70 % of a core.
REALTIME_PRIORITY = 1
# The split: enough generator processes that none takes more than this share of a core (its whole
# CPU, waits included), from the calibration's CPU per request: below the guard's limit, with room.
TARGET_PROCESS_SHARE = 0.50


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


@functools.cache
def realtime_allowed() -> bool:
    """Whether this machine lets the generator run real-time (root or CAP_SYS_NICE, and chrt)."""
    try:
        return (
            subprocess.run(["chrt", "-r", str(REALTIME_PRIORITY), "true"], capture_output=True, timeout=10).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def priority_of(cfg_priority: str) -> str:
    """What the generator will run at: ``SCHED_RR 1`` or ``normal``."""
    return f"SCHED_RR {REALTIME_PRIORITY}" if cfg_priority == "realtime" and realtime_allowed() else "normal"


def processes_for(rate: float, cpu_us_per_req: float, cap: int | None = None) -> int:
    """Generator processes for ``rate``: none above TARGET_PROCESS_SHARE of a core, at most ``cap``."""
    cap = cap or generator_cores()
    if not math.isfinite(cpu_us_per_req) or cpu_us_per_req <= 0:
        return 1
    return max(1, min(cap, math.ceil(rate * cpu_us_per_req * 1e-6 / TARGET_PROCESS_SHARE)))


@dataclass(frozen=True)
class PointConfig:
    slo_ms: float = SLO_MS
    warmup_s: float = 1.0  # intended-time seconds excluded before the first window
    min_window_s: float = 2.0
    max_windows: int = 6  # the cap: a point not stable by then is marked unstable
    early_stop: bool = True  # stop at the first stable windows (False: run all max_windows)
    processes: int = 0  # generator processes; 0: as many as the rate needs (cpu_us_per_req)
    min_samples: int = stats.MIN_STEP_SAMPLES  # requests over the measured windows
    spin_us: float = DEFAULT_SPIN_US  # cooperative spin before each send (contracts.RunSpec)
    sender: str = DEFAULT_SENDER  # how each send waits for its time (generator/precise.py)
    cpu_us_per_req: float = math.nan  # the generator's CPU per request (calibration), for the split
    max_processes: int = 0  # cap of the split (0: generator_cores())
    priority: str = "realtime"  # the generator's scheduling: realtime (where allowed, else normal) or normal

    def processes_at(self, rate: float) -> int:
        if self.processes > 0:
            return self.processes
        return processes_for(rate, self.cpu_us_per_req, self.max_processes or None)


def run_point(
    target: Target, rate: float, seed: int, cfg: PointConfig, ep: Endpoints, out: Path, tag: str
) -> stats.Point:
    window_s = stats.window_seconds(rate, cfg.min_window_s, cfg.min_samples)
    run_s = cfg.warmup_s + window_s * cfg.max_windows + 0.01  # the schedule's length (intended time)
    prefix = out / "exact" / tag
    processes = cfg.processes_at(rate)
    spec = RunSpec(
        rate=rate, seed=seed, duration_s=run_s, warmup_s=cfg.warmup_s, window_s=window_s if cfg.early_stop else 0.0,
        slo_ms=cfg.slo_ms, processes=processes, spin_us=cfg.spin_us, sender=cfg.sender, out=str(prefix),
    )  # fmt: skip
    env = {**os.environ, **ep.urls, **spec.to_env()}
    for var in ("LOAD_RATE", "LOAD_SEED", "LOAD_WINDOW_S", "LOAD_WARMUP_S", "LOAD_DURATION_S", "LOAD_EXACT_OUT"):
        env.pop(var, None)  # the spec is the whole contract
    # -t is a cap only: the open-loop user (or the master) ends the run after its schedule.
    extra = ["--processes", str(processes)] if processes > 1 else []
    cmd = locust_argv(processes, f"{math.ceil(run_s + LOCUST_START_S)}s", 2, target.open_user_class, *extra)
    if priority_of(cfg.priority) != "normal":
        cmd = ["chrt", "-r", str(REALTIME_PRIORITY), *cmd]
    pins = cpu.pinning()
    if pins:
        cmd = ["taskset", "-c", ",".join(map(str, pins[0])), *cmd]
    servers = [s for s in (target.server, "gateway" if target.via_gateway else None) if s]
    cpu_before = {s: cpu.server_cpu_s(s, ep.pids.get(s)) for s in servers}
    metrics = (ep.tf_metrics, ep.ts_metrics, ep.gateway_metrics if target.via_gateway else None)
    before = scrape.snapshot(*metrics)
    started = time.monotonic()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for stale in prefix.parent.glob(f"{prefix.name}.*.json"):  # an earlier run's, into the same folder
        stale.unlink()
    with (out / "locust.log").open("ab") as log:
        subprocess.run(
            cmd, env=env, cwd=REPO, check=False, timeout=run_s + 2 * LOCUST_START_S + 30,
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    wall = time.monotonic() - started
    after = scrape.snapshot(*metrics)
    cpu_after = {s: cpu.server_cpu_s(s, ep.pids.get(s)) for s in servers}
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
    impact, without = stats.lag_impact_ms(lat, lag)
    guards = [guard(r, lo, hi) for r in recordings]
    cpu_share = max(g.cpu_share for g in guards)
    samples = int(sel.sum())
    cores = os.cpu_count() or 1
    invalid = stats.invalid_reasons(cpu_share, guards[0].idle, impact, slo_ms)
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
        generator_core_share=cpu_share,  # the busiest process's whole CPU: what the guard judges
        generator_machine_share=sum(g.cpu_share for g in guards) / cores,
        generator_waiting_share=max(g.waiting_share for g in guards),  # of it, a precise wait's spin
        generator_processes=len(recordings),
        generator_cpu_us_per_req=sum(g.cpu_s for g in guards) / max(1, samples) * 1e6,
        machine_idle=guards[0].idle,
        machine_steal=guards[0].steal,
        send_lag_p50_ms=_pct(finite_lag, 50),
        send_lag_p99_ms=_pct(finite_lag, 99),
        lag_impact_ms=impact,
        p99_without_lag_ms=without,
        answered_total=int(table["ok"].sum()),
        batch=scrape.batch_from_requests(table["batch"][sel]),
        window_throughput=[w.throughput for w in windows],
        window_p99_ms=[w.p99_ms for w in windows],
    )
    return point


def record(p: stats.Point, target: str, block: int, seed: int, slo_ms: float) -> results.PointRecord:
    """A measured point as results.json holds it."""
    e = p.extra
    num = results.num
    b = e.get("breakdown")
    batch = e.get("batch")
    return results.PointRecord(
        target=target,
        block=block,
        rate=p.rate,
        seed=seed,
        p50_ms=num(p.p50_ms),
        p99_ms=num(p.p99_ms),
        throughput=p.throughput,
        samples=p.samples,
        failed=p.failed,
        stable=p.stable,
        windows=p.windows,
        passes=p.passes(slo_ms),
        valid=p.valid,
        guard=results.Guard(
            generator_cpu_share=num(e.get("generator_core_share")),
            generator_machine_share=num(e.get("generator_machine_share")),
            generator_processes=int(e.get("generator_processes", 0)),
            generator_cpu_us_per_req=num(e.get("generator_cpu_us_per_req")),
            machine_idle=num(e.get("machine_idle")),
            machine_steal=num(e.get("machine_steal")),
            send_lag_p50_ms=num(e.get("send_lag_p50_ms")),
            send_lag_p99_ms=num(e.get("send_lag_p99_ms")),
            lag_impact_ms=num(e.get("lag_impact_ms")),
            p99_without_lag_ms=num(e.get("p99_without_lag_ms")),
            reasons=list(p.invalid),
        ),
        server_cpu_us_per_req={k: num(v) for k, v in (e.get("server_cpu_us_per_req") or {}).items()},
        breakdown=_breakdown(b) if b else None,
        batch=_batch(batch) if batch else None,
        wall_s=float(e.get("wall_s", 0.0)),
    )


def _batch(b: dict[str, Any]) -> results.Batch:
    return results.Batch(mean=float(b["mean"]), hist=dict(b["hist"]), source=str(b["source"]))


def _breakdown(b: dict[str, Any]) -> results.Breakdown:
    return results.Breakdown(
        queue_us=results.num(b.get("queue_us")),
        compute_us=results.num(b.get("compute_us")),
        total_us=results.num(b.get("total_us")),
        gateway_us=results.num(b.get("gateway_us")),
        hop_us=results.num(b.get("hop_us")),
        batch=_batch(b["batch"]) if b.get("batch") else None,
    )


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


@dataclass(frozen=True)
class Guard:
    """One generator process over the measured span: its CPU (a precise wait's spin included, and
    apart as ``waiting_s``), the machine."""

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
