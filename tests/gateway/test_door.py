"""The gateway's own overload protection (gateway/app/overload.py): lag to shedding pressure."""

from __future__ import annotations

import random

import pytest

from gateway.app import overload
from gateway.app.overload import LoopLag


def test_pressure_follows_the_smoothed_lag_linearly_between_the_thresholds() -> None:
    lag = LoopLag(low_s=0.002, high_s=0.020, rng=random.Random(1))
    trace = []
    samples = (0.001, 0.001, 0.050, 0.050, 0.050, *[0.0] * 12)
    for sample in samples:
        lag.observe(sample)
        trace.append(round(lag.pressure, 3))
    smoothed, expected = 0.0, []
    for sample in samples:
        smoothed += overload.SMOOTHING * (sample - smoothed)
        expected.append(round(min(1.0, max(0.0, (smoothed - 0.002) / 0.018)), 3))
    assert trace == expected
    assert trace[:2] == [0.0, 0.0] and trace[4] == 1.0 and trace[-1] == 0.0


def test_the_share_shed_is_the_pressure() -> None:
    lag = LoopLag(low_s=0.0, high_s=0.010, rng=random.Random(7))
    for _ in range(50):
        lag.observe(0.005 / overload.SMOOTHING * overload.SMOOTHING)  # converges to 5 ms
    assert lag.pressure == pytest.approx(0.5, abs=1e-3)
    shed = sum(lag.shed(active=100) for _ in range(20_000)) / 20_000
    assert shed == pytest.approx(0.5, abs=0.02)


def test_a_keeping_up_loop_sheds_nothing() -> None:
    lag = LoopLag()
    for _ in range(100):
        lag.observe(0.0005)
    assert lag.pressure == 0.0 and not any(lag.shed(active=100) for _ in range(1000))


def test_a_lagging_loop_with_few_requests_in_it_sheds_nothing() -> None:
    lag = LoopLag(low_s=0.0, high_s=0.010)
    for _ in range(50):
        lag.observe(0.050)
    assert lag.pressure == 1.0
    assert not any(lag.shed(active=overload.MIN_ACTIVE - 1) for _ in range(1000))
    assert all(lag.shed(active=overload.MIN_ACTIVE) for _ in range(1000))
