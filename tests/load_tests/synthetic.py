"""Synthetic servers with known p99 curves, and whole runs of the block design against them (no
server needed): what the estimator, the design, the results schema and the report are tested on."""

from __future__ import annotations

import math
import random

import numpy as np

from load_tests import blocks, estimate, results
from load_tests.targets import BY_NAME

SLO = 10.0
FIXED = 200.0
# Synthetic p99 curves: TF Serving holds more than TorchServe; each floor holds more than its server.
CURVES = {
    "tfserving": estimate.Knee(3.0, 1400.0, 1200.0),  # λ* = 1000
    "torchserve": estimate.Knee(3.5, 1300.0, 900.0),  # λ* = 700
    "torchserve-onnx": estimate.Knee(3.5, 1300.0, 1100.0),  # λ* = 900
    "floor-savedmodel-batching": estimate.Knee(1.5, 1700.0, 2000.0),  # λ* = 1800
    "floor-torchscript-batching": estimate.Knee(1.2, 1760.0, 1800.0),  # λ* = 1600
    "floor-onnx-batching": estimate.Knee(1.2, 1760.0, 2100.0),  # λ* = 1900
}
TARGETS = [BY_NAME[n] for n in CURVES]


def point(target: str, rate: float, block: int, rng: np.random.Generator, shift: float) -> results.PointRecord:
    true = float(CURVES[target].p99_ms(rate))
    p99 = true * math.exp(rng.normal(0, 0.08) + shift) if math.isfinite(true) else None
    failed = 0 if p99 is not None else int(rate)
    passes = p99 is not None and p99 <= SLO
    guard = results.Guard(0.3, 0.15, 1, 300.0, 0.4, 0.0, 0.03, 0.2, 0.01, p99, [])
    return results.PointRecord(
        target=target, block=block, rate=rate, seed=block, p50_ms=None if p99 is None else p99 / 3, p99_ms=p99,
        throughput=rate, samples=2000, failed=failed, stable=True, windows=3, passes=passes, valid=True, guard=guard,
    )  # fmt: skip


def simulate(max_blocks: int, seed: int = 0) -> tuple[list[results.PointRecord], int]:
    """A whole run of the design against the synthetic servers: block 0's climb, then knee blocks
    until every direct target is within ±10 % (after ≥ 3 blocks) or ``max_blocks``."""
    rng = np.random.default_rng(seed)
    points: list[results.PointRecord] = []
    for index in range(max_blocks):
        shift = rng.normal(0, 0.05)  # the machine's state: shared by every point of a block
        if index == 0:
            while True:
                visits = []
                for t in CURVES:
                    nxt = blocks.climb_next([p for p in points if p.target == t], SLO, FIXED, 50_000.0)
                    if nxt is not None:
                        visits.append((t, nxt))
                if not visits:
                    break
                points += [point(t, r, 0, rng, shift) for t, r in blocks.shuffled(visits, index)]
        else:
            per = blocks.by_target(points)
            for t in CURVES:
                plan = blocks.knee_plan(per[t], SLO, FIXED, 50_000.0, blocks.KNEE_STEPS, random.Random(f"{index}{t}"))
                points += [point(t, r, index, rng, shift) for r in plan]
        if index + 1 >= estimate.MIN_BLOCKS:
            s = blocks.summarise(TARGETS, points, SLO, FIXED, resamples=99, pairs=())
            if blocks.converged(s.targets, 0.10):
                return points, index + 1
    return points, max_blocks


def capacity_run(points: list[results.PointRecord], *, dirty: bool = False, resamples: int = 99) -> results.CapacityRun:
    """A whole results.json's worth from synthetic points, as the runner assembles it."""
    s = blocks.summarise(TARGETS, points, SLO, FIXED, resamples=resamples, seed=1)
    n_blocks = max(p.block for p in points) + 1
    guard = results.GuardLimits(0.7, 0.05, 0.05)
    settings = results.PointSettings(1.0, 1.5, 3, 1500, "timerfd", 60.0, 0)
    return results.CapacityRun(
        schema_version=results.SCHEMA_VERSION,
        commit="0123456789abcdef0123456789abcdef01234567",
        dirty=dirty,
        started="2026-12-04T18:00:00+00:00",
        seconds=1800.0,
        method=results.Method(SLO, FIXED, FIXED, 50_000.0, list(blocks.KNEE_STEPS), 0.10, 3, 2400.0, resamples,
                              0.95, settings, guard, f"every direct target within ±10 % after {n_blocks} blocks"),
        targets=s.targets,
        comparisons=s.comparisons,
        points=points,
        blocks=[results.BlockRecord(b, b + 1, 60.0 * b, 60.0, sum(p.block == b for p in points), {})
                for b in range(n_blocks)],
        calibration=results.Calibration(2000.0, 2000.0, 1, 250.0, []),
        environment=results.Environment("AMD EPYC", 2, "none", "CPU", "stand-in (serving/tfserving_standin)",
                                        "3.11.7", {"locust": "2.47.0"}, "max_batch_size { value: 256 }",
                                        "mnist: batchSize 32", "none: 2 cores", ["0.10", "0.20", "0.30"],
                                        ["0.90", "0.50", "0.40"]),
        source=results.Source("0123456789abcdef0123456789abcdef01234567", dirty, [" M Makefile"] if dirty else []),
        left_out=["tfserving-grpc"],
    )  # fmt: skip
