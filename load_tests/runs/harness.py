"""The one harness the runs in load_tests/runs/ share: the report folder, the servers (the native
stack, already running or started here, and the load tools' own floor and trivial servers on free
ports), pinning on big machines, the record of the machine and of the tree it ran from, the GPU
sampler, the generator's calibration, and the end-of-run machine state.

    with harness.session(targets, args.artifacts, out, calibrate=cfg) as s:
        ... run_point(target, rate, seed, cfg, s.ep, s.out, tag) ...
    s.environment, s.source, s.calibration  # what the results record

Runs that start servers of their own configuration (the sweep's batching grid, bench-tuning's
TorchServe variants, the chaos run's supervised stack) pass ``stack=False`` and start those
themselves; everything else comes from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from load_tests import results, stats
from load_tests.measure import cpu, machine
from load_tests.measure.point import PointConfig, generator_cores, run_point
from load_tests.runs.stack import local_servers, native_stack
from load_tests.targets import BY_NAME, Endpoints, Target

CALIBRATION_START = 500.0  # req/s; doubled until a rate does not hold
CALIBRATION_MAX = 64_000.0
CALIBRATION_SECONDS = 4.5  # measured seconds per calibration point (3 windows of 1.5 s)


def folder(out: Path | None, prefix: str = "") -> Path:
    """The report folder: ``out``, or reports/<prefix><UTC time>; created."""
    path = out or Path("reports") / f"{prefix}{datetime.now(UTC):%Y%m%d-%H%M%S}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pinning_text(env_cores: int) -> str:
    cores = cpu.pinning()
    if cores:
        return f"generator on cores {cores[0]}, servers and gateway on {cores[1]}"
    return f"none: {env_cores} cores (< {cpu.PIN_MIN_CORES}), the generator shares them with the servers"


@dataclass
class Session:
    out: Path
    ep: Endpoints
    environment: results.Environment
    source: results.Source
    started: str  # ISO 8601, UTC
    calibration: results.Calibration | None = None
    _t0: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def environment_dict(self) -> dict[str, Any]:
        """The environment as the untyped dict the sweep and matrix reports read (git_commit, git_dirty)."""
        env = dataclasses.asdict(self.environment)
        env.update(git_commit=self.source.commit[:12], git_dirty=self.source.dirty)
        env["backends"] = env["server_settings"].pop("backends", [])
        return env


def servers_of(targets: Sequence[Target]) -> tuple[list[str], bool]:
    """(the native servers the targets need, whether the gateway is among them)."""
    gateway = any(t.via_gateway for t in targets)
    if gateway:
        return ["tfserving", "torchserve"], True  # the gateway's backends
    return sorted({t.server for t in targets if t.server in ("tfserving", "torchserve")}), False


@contextlib.contextmanager
def session(
    targets: Sequence[Target],
    artifacts: Path,
    out: Path,
    *,
    ports: Any = None,
    stack: bool = True,
    floor_device: str = "cpu",
    calibrate: PointConfig | None = None,
    seed: int = 1,
) -> Iterator[Session]:
    """Everything a run measures against, started (or found) and stopped; see the module's docstring."""
    from serving.native.settings import ServingPorts

    t0 = time.monotonic()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    ports = ports or ServingPorts.from_env()
    servers, gateway = servers_of(targets) if stack else ([], False)
    wanted = [*targets, *([BY_NAME["trivial"]] if calibrate else [])]
    native: contextlib.AbstractContextManager[dict[str, int]] = (
        native_stack(artifacts, out / "run", ports, servers, gateway) if servers else contextlib.nullcontext({})
    )
    with native as pids, local_servers(wanted, artifacts, out / "run", Endpoints.native(ports), floor_device) as ep:
        ep = ep.with_pids(pids or {})
        pins = cpu.pinning()
        if pins:
            for server in ("tfserving", "torchserve", "gateway"):
                cpu.pin([p.pid for p in cpu.server_processes(server, ep.pids.get(server))], pins[1])
            for pid in ep.pids.values():
                cpu.pin([pid], pins[1])
        gateway_url = ep.urls.get("GATEWAY_URL", "") if gateway else "http://127.0.0.1:1"  # not another run's
        env = machine.environment(gateway_url, pinning_text(os.cpu_count() or 1))
        env.local_servers = dict(ep.commands)
        sampler = machine.GpuSampler()
        s = Session(out, ep, env, machine.source(), started, _t0=t0)
        try:
            if calibrate is not None:
                print("calibrating the load generator against a trivial server ...", flush=True)
                s.calibration = run_calibration(calibrate, out, seed, ep)
            yield s
        finally:
            env.load_avg_after = machine.load_average()
            env.gpu_samples = sampler.stop()


Measure = Callable[[Target, float, int, PointConfig, Endpoints, Path, str], stats.Point]


def calibration_point(p: stats.Point, slo_ms: float) -> results.CalibrationPoint:
    e = p.extra
    num = results.num
    return results.CalibrationPoint(
        rate=p.rate,
        processes=int(e.get("generator_processes", 0)),
        send_lag_p50_ms=num(e.get("send_lag_p50_ms")),
        send_lag_p99_ms=num(e.get("send_lag_p99_ms")),
        lag_impact_ms=num(e.get("lag_impact_ms")),
        generator_cpu_share=num(e.get("generator_core_share")),
        generator_cpu_us_per_req=num(e.get("generator_cpu_us_per_req")),
        machine_idle=num(e.get("machine_idle")),
        failed=p.failed,
        reasons=list(p.invalid),
        ok=holds(p, slo_ms),
    )


def holds(p: stats.Point, slo_ms: float) -> bool:
    """The generator holds this rate: no guard reason of any kind, nothing failed, p99 within the SLO."""
    return p.valid and p.passes(slo_ms)


def calibration_line(s: dict[str, Any]) -> str:
    """One calibration point in words (``make bench-generator`` prints these)."""
    return (
        f"rate {s['rate']:.0f} req/s: send lag p50 {_f(s['send_lag_p50_ms'])} ms p99 {_f(s['send_lag_p99_ms'])} ms, "
        f"generator {_f(s['generator_cpu_share'], 100, '.0f')} % of a core, {s['processes']} process(es)"
    )


def _f(v: float | None, scale: float = 1.0, spec: str = ".3f") -> str:
    return "–" if v is None or not math.isfinite(v) else format(v * scale, spec)


def run_calibration(
    cfg: PointConfig, out: Path, seed: int, ep: Endpoints, measure_point: Measure = run_point
) -> results.Calibration:
    """The generator's own ceiling: the highest rate, against a server that answers at once, that
    ``holds`` with one process, doubling from CALIBRATION_START; then, on a machine with more than one
    generator core, the split measured the same way. ``ep`` must hold the trivial server's URL."""
    target = BY_NAME["trivial"]
    one = dataclasses.replace(
        cfg, processes=1, early_stop=False, max_windows=stats.STABLE_WINDOWS, min_samples=1,
        min_window_s=CALIBRATION_SECONDS / stats.STABLE_WINDOWS,
    )  # fmt: skip
    points: list[results.CalibrationPoint] = []
    rate = CALIBRATION_START
    while rate <= CALIBRATION_MAX:
        p = measure_point(target, rate, seed, one, ep, out, f"calibration_{rate:.0f}")
        points.append(calibration_point(p, cfg.slo_ms))
        print("    calibration " + calibration_line(dataclasses.asdict(points[-1])), flush=True)
        if not points[-1].ok:
            break
        rate *= 2
    cpu = [p.generator_cpu_us_per_req for p in points if p.generator_cpu_us_per_req is not None]
    cpu_us = max(cpu) if cpu else None
    per_process = max((p.rate for p in points if p.ok), default=0.0)
    cores = generator_cores()
    total = per_process
    if cores > 1 and per_process > 0 and cpu_us is not None:  # the split, measured: as many processes as needed
        split = dataclasses.replace(one, processes=0, cpu_us_per_req=cpu_us)
        rate = per_process * 2
        while rate <= min(CALIBRATION_MAX, per_process * cores * 2):
            p = measure_point(target, rate, seed, split, ep, out, f"calibration_split_{rate:.0f}")
            points.append(calibration_point(p, cfg.slo_ms))
            print("    calibration " + calibration_line(dataclasses.asdict(points[-1])), flush=True)
            if not points[-1].ok:
                break
            total = rate
            rate *= 2
    cal = results.Calibration(
        ceiling_rps=per_process, ceiling_rps_total=total, generator_cores=cores, cpu_us_per_req=cpu_us, points=points
    )
    print(
        f"  generator ceiling {cal.ceiling_rps:,.0f} req/s per process, {cal.ceiling_rps_total:,.0f} req/s over "
        f"{cores} core(s); {cpu_us or math.nan:.0f} µs of CPU per request",
        flush=True,
    )
    return cal


def with_calibration(cfg: PointConfig, cal: results.Calibration | None) -> PointConfig:
    """The point settings with the calibration's CPU per request (it sizes the generator split)."""
    if cal is None or cal.cpu_us_per_req is None:
        return cfg
    return dataclasses.replace(cfg, cpu_us_per_req=cal.cpu_us_per_req)
