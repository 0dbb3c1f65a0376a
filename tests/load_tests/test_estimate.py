"""The estimator on synthetic points drawn from a known curve (load_tests/estimate.py): QPS@SLO read
off one fit of all points, its block-bootstrap interval covering the true value, the paired ratios,
and a clear "not estimable" wherever the points cannot say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from load_tests import estimate

SLO = 10.0
# p99(λ) = 2 + 2000 / (1500 − λ): meets 10 ms at λ* = 1500 − 2000 / 8 = 1250 req/s.
KNEE = estimate.Knee(2.0, 2000.0, 1500.0)
TRUE = 1250.0
RATES = (200.0, 950.0, 1125.0, 1250.0, 1375.0, 1550.0)  # the fixed rate, around the knee, one past μ


def test_the_known_curve_meets_the_slo_where_the_formula_says() -> None:
    assert KNEE.rate_at(SLO) == pytest.approx(TRUE)
    assert float(KNEE.p99_ms(TRUE)) == pytest.approx(SLO)
    assert math.isinf(float(KNEE.p99_ms(1600.0)))
    assert math.isnan(estimate.Knee(12.0, 1.0, 100.0).rate_at(SLO))  # a floor above the SLO: nowhere


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fit_finds_the_true_rate_from_noisy_points(seed: int) -> None:
    curve = estimate.synthetic_curve(KNEE, RATES, blocks=6, noise=0.10, seed=seed, block_noise=0.05)
    f = estimate.fit(curve, SLO)
    assert f.method == "model" and f.qps == pytest.approx(TRUE, rel=0.05)
    assert f.isotonic_qps == pytest.approx(TRUE, rel=0.10)  # the model-free check agrees
    assert f.knee is not None and f.knee.mu == pytest.approx(1500.0, rel=0.10)
    assert f.highest_pass is not None and f.lowest_fail is not None  # the bracket, from the points
    assert f.highest_pass <= 1375.0 and f.lowest_fail >= 1125.0


def test_failed_points_are_censored_not_dropped() -> None:
    """Only the points past μ (all failed, p99 infinite) say where the curve ends; the fit uses them
    as 'above' and still lands on λ*."""
    curve = estimate.synthetic_curve(KNEE, (200.0, 900.0, 1100.0, 1200.0, 1600.0, 1800.0), blocks=5, noise=0.05)
    assert np.isinf(curve.p99_ms[curve.rate >= 1600]).all() and (curve.failed[curve.rate >= 1600] > 0).all()
    f = estimate.fit(curve, SLO)
    assert f.qps == pytest.approx(TRUE, rel=0.05)


def test_a_stray_point_moves_the_robust_fit_little() -> None:
    curve = estimate.synthetic_curve(KNEE, RATES, blocks=6, noise=0.05, seed=4)
    clean = estimate.fit(curve, SLO).qps
    stray = estimate.Curve.of([*zip(curve.rate, curve.p99_ms, curve.failed, curve.block, strict=True),
                               (950.0, 40.0, 0, 0)])  # a neighbour's job: 10x the curve at one point  # fmt: skip
    moved = estimate.fit(stray, SLO).qps
    assert clean is not None and moved is not None and abs(moved - clean) / clean < 0.03


def test_the_block_bootstrap_interval_covers_the_true_rate() -> None:
    """Over independent synthetic runs the 95 % interval covers λ* nearly always and is narrow."""
    covered, widths = 0, []
    runs = 8
    for seed in range(runs):
        curve = estimate.synthetic_curve(KNEE, RATES, blocks=6, noise=0.10, seed=100 + seed, block_noise=0.05)
        cache = estimate.FitCache({"x": curve}, SLO)
        i = estimate.qps_interval(cache, "x", resamples=199, seed=seed)
        assert i.low is not None and i.high is not None and i.blocks == 6
        covered += i.low <= TRUE <= i.high
        widths.append(i.half_width)
    assert covered >= runs - 1
    assert max(w for w in widths if w is not None) < 0.10


def test_a_paired_ratio_cancels_what_a_block_shares() -> None:
    """Two targets whose blocks shift together (the machine's state): the ratio of their QPS@SLO,
    paired within blocks, is tighter than either figure alone, and centred on the true ratio."""
    server = estimate.Knee(3.0, 1400.0, 1000.0)  # λ* = 1000 − 1400/7 = 800
    floor_ = estimate.Knee(1.0, 1800.0, 2000.0)  # λ* = 2000 − 1800/9 = 1800
    rates_s, rates_f = (200.0, 600.0, 720.0, 800.0, 880.0, 1050.0), (200.0, 1350.0, 1620.0, 1800.0, 1980.0, 2100.0)
    a = estimate.synthetic_curve(server, rates_s, blocks=6, noise=0.04, seed=7, block_noise=0.15)
    b = estimate.synthetic_curve(floor_, rates_f, blocks=6, noise=0.04, seed=7, block_noise=0.15)
    cache = estimate.FitCache({"server": a, "floor": b}, SLO)
    r = estimate.qps_ratio_interval(cache, "server", "floor", resamples=199, seed=3)
    assert r.estimate == pytest.approx(800 / 1800, rel=0.05)
    assert r.low is not None and r.high is not None and r.low <= 800 / 1800 <= r.high


def test_latency_ratio_pairs_blocks() -> None:
    t = {0: 3.0, 1: 6.0, 2: 3.3, 3: 5.7}  # a block's machine state doubles both
    f = {0: 1.0, 1: 2.0, 2: 1.1, 3: 1.9}
    r = estimate.paired_ratio_interval(t, f, resamples=199)
    assert r.estimate == pytest.approx(3.0) and r.low is not None and r.high is not None
    assert r.high - r.low < 0.2  # every block says 3x


@pytest.mark.parametrize(
    ("rates", "reason"),
    [
        ((100.0, 200.0, 400.0), "no valid point fails the SLO"),  # the knee was never reached
        ((1480.0, 1490.0, 1499.0), "no valid point meets the SLO"),  # every point above it
    ],
)
def test_degenerate_points_are_not_estimable(rates: tuple[float, ...], reason: str) -> None:
    curve = estimate.synthetic_curve(KNEE, rates, blocks=4, noise=0.02)
    f = estimate.fit(curve, SLO)
    assert f.qps is None and f.method == "none" and reason in f.reason
    i = estimate.qps_interval(estimate.FitCache({"x": curve}, SLO), "x", resamples=99)
    assert i.estimate is None and i.low is None and i.high is None and i.reason


def test_too_few_blocks_give_no_interval() -> None:
    curve = estimate.synthetic_curve(KNEE, RATES, blocks=2, noise=0.05)
    i = estimate.qps_interval(estimate.FitCache({"x": curve}, SLO), "x", resamples=99)
    assert i.estimate == pytest.approx(TRUE, rel=0.05)  # the points say where, ...
    assert i.low is None and i.high is None and "2 block(s)" in i.reason  # ... but not how surely
    assert i.half_width is None


def test_no_point_at_all_is_not_estimable() -> None:
    f = estimate.fit(estimate.Curve.of([]), SLO)
    assert f.qps is None and f.reason == "no valid point"


def test_a_few_unfittable_resamples_are_left_out_and_said_so_many_refuse_the_interval() -> None:
    ids = list(range(8))

    def stat(blocks: np.ndarray) -> float:
        return math.nan if list(blocks).count(0) >= 4 else float(np.mean(blocks))  # rare: block 0 drawn 4+ times

    few = estimate.block_interval(ids, stat, resamples=999, seed=1)
    assert few.low is not None and few.high is not None and "could not be fitted and were left out" in few.reason

    def often(blocks: np.ndarray) -> float:
        return math.nan if list(blocks).count(0) >= 2 else float(np.mean(blocks))  # a quarter of the resamples

    many = estimate.block_interval(ids, often, resamples=199, seed=1)
    assert many.low is None and many.high is None and many.reason.startswith("not estimable:")
