"""The block design on synthetic servers with a known curve (load_tests/blocks.py): the coarse climb,
the rates around the knee, the stopping rule, and the summary (each target's QPS@SLO with its
interval, the ratios to its floor paired within blocks, the servers' comparison) — driven through
whole simulated runs, so the design is checked end to end without a server."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from load_tests import blocks, estimate, results
from load_tests.targets import BY_NAME
from tests.load_tests.synthetic import CURVES, FIXED, SLO, TARGETS, point, simulate


def test_the_climb_brackets_the_knee_then_stops() -> None:
    rng = np.random.default_rng(1)
    pts: list[results.PointRecord] = []
    while (nxt := blocks.climb_next(pts, SLO, FIXED, 50_000.0)) is not None:
        pts.append(point("torchserve", nxt, 0, rng, 0.0))
    rates = [p.rate for p in pts]
    assert rates[:3] == [200.0, 400.0, 800.0]  # doubling from the fixed rate until one fails (λ* = 700)
    assert rates[3] == pytest.approx(math.sqrt(400 * 800))  # then the bracket's midpoints ...
    passing = max(p.rate for p in pts if p.passes)
    failing = min(p.rate for p in pts if not p.passes)
    assert passing < 700 < failing and failing / passing <= blocks.COARSE  # ... until it is within 15 %
    assert len(rates) <= 7


def test_a_failing_first_rate_descends() -> None:
    slow = [point("torchserve", 2000.0, 0, np.random.default_rng(0), 0.0)]
    assert blocks.climb_next(slow, SLO, 2000.0, 50_000.0) == 1000.0


def test_later_blocks_visit_the_fixed_rate_and_around_the_knee() -> None:
    rng = np.random.default_rng(2)
    pts = [point("tfserving", r, b, rng, 0.0) for b in range(2) for r in (200.0, 800.0, 950.0, 1050.0, 1150.0)]
    plan = blocks.knee_plan(pts, SLO, FIXED, 50_000.0, blocks.KNEE_STEPS, random.Random(0))
    assert plan[0] == FIXED and len(plan) == 1 + len(blocks.KNEE_STEPS)
    around = np.asarray(plan[1:]) / 1000.0  # the estimate is near λ* = 1000
    assert np.all(np.abs(around - np.asarray(blocks.KNEE_STEPS)) < 0.10)


def test_a_simulated_run_converges_and_its_intervals_cover_the_truth() -> None:
    points, used = simulate(max_blocks=12)
    assert estimate.MIN_BLOCKS <= used < 12  # the stopping rule ended it, not the cap
    s = blocks.summarise(TARGETS, points, SLO, FIXED, resamples=199, seed=1)
    for name, t in s.targets.items():
        q = t.qps_at_slo
        true = CURVES[name].rate_at(SLO)
        assert q.estimate == pytest.approx(true, rel=0.06), name
        assert q.ci95 is not None and q.ci95[0] <= true <= q.ci95[1], (name, q)
        assert t.points_valid == t.points_total > 0 and t.fit.method == "model"
        assert t.fit.highest_pass is not None and t.fit.lowest_fail is not None
    for name in blocks.DIRECT:
        hw = s.targets[name].qps_at_slo.half_width
        assert hw is not None and hw <= 0.10


def test_every_server_has_its_floor_ratios_with_intervals() -> None:
    points, _ = simulate(max_blocks=6, seed=3)
    s = blocks.summarise(TARGETS, points, SLO, FIXED, resamples=199, seed=1)
    for name in blocks.DIRECT:
        r = s.targets[name].ratios
        assert r is not None and r.floor == BY_NAME[name].floor and r.rate == FIXED
        for e in (r.p50, r.p99, r.qps_at_slo):
            assert e.estimate is not None and e.ci95 is not None and e.ci95[0] <= e.estimate <= e.ci95[1]
        true_qps = CURVES[name].rate_at(SLO) / CURVES[r.floor].rate_at(SLO)
        true_p99 = float(CURVES[name].p99_ms(FIXED) / CURVES[r.floor].p99_ms(FIXED))
        assert r.qps_at_slo.ci95 is not None and r.qps_at_slo.ci95[0] <= true_qps <= r.qps_at_slo.ci95[1]
        assert r.p99.estimate == pytest.approx(true_p99, rel=0.1)
    assert s.targets["floor-onnx-batching"].ratios is None and s.targets["floor-onnx-batching"].role == "floor"


def test_the_servers_are_ranked_only_when_the_interval_excludes_parity() -> None:
    points, _ = simulate(max_blocks=6, seed=4)
    s = blocks.summarise(TARGETS, points, SLO, FIXED, resamples=199, seed=1)
    by = {(c.a, c.b): c for c in s.comparisons}
    tf_ts = by[("tfserving", "torchserve")]  # 1000 vs 700: TF Serving holds 1.43x
    assert tf_ts.verdict == "tfserving holds more" and tf_ts.qps_ratio.estimate == pytest.approx(1000 / 700, rel=0.06)
    assert blocks.verdict("a", "b", estimate.Interval(1.02, 0.95, 1.10, 6)) == "indistinguishable"
    assert blocks.verdict("a", "b", estimate.Interval(0.8, 0.7, 0.9, 6)) == "b holds more"
    assert blocks.verdict("a", "b", estimate.Interval(1.1, None, None, 2, "too few")) == "not estimable"


def test_invalid_points_stay_out_of_the_fit_and_are_counted_by_rule() -> None:
    points, _ = simulate(max_blocks=4, seed=5)
    bad = [p for p in points if p.target == "tfserving"][:3]
    for p in bad:
        p.valid = False
        p.guard.reasons = ["send lag moved p99 by 0.90 ms (> 5% of the 10 ms SLO)", "machine idle 2.0% (< 5%)"]
    s = blocks.summarise(TARGETS, points, SLO, FIXED, resamples=99)
    t = s.targets["tfserving"]
    assert t.points_total - t.points_valid == 3 and t.guard_reasons == {"send lag": 3, "machine idle": 3}


def test_a_knee_trapped_low_by_a_noisy_failure_is_explored_past() -> None:
    """Block 0 met a noisy failure at the fixed rate and bracketed the knee low; when a later point
    passes above every planned rate, the next block also tries a rate past it."""
    rng = np.random.default_rng(6)
    pts = [point("floor-torchscript-batching", r, 0, rng, 0.0) for r in (100.0, 120.0, 141.0, 400.0)]
    pts[1].passes, pts[1].p99_ms = False, 12.0  # the blip: 120 req/s "failed"
    plan = blocks.knee_plan(pts, SLO, FIXED, 50_000.0, blocks.KNEE_STEPS, random.Random(1))
    assert max(plan) == pytest.approx(400.0 * blocks.EXPLORE)
