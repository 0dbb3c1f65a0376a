"""The gateway's own overload protection (gateway/app/overload.py): a saturated loop sheds, a loop
that merely waits for a core does not; exact traces of simulated samples."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gateway.app import overload
from gateway.app.overload import LoopLag, loop_cores


def _lag(**kw: float) -> LoopLag:
    return LoopLag(low_s=0.002, high_s=0.020, rng=random.Random(1), cores=1.0, **kw)


def test_pressure_follows_the_smoothed_lag_while_the_process_is_busy() -> None:
    lag = _lag()
    samples = (0.001, 0.001, *[0.050] * 30, *[0.0] * 40)
    trace, smoothed, busy, expected = [], 0.0, 0.0, []
    for sample in samples:
        lag.observe(sample, cpu_share=1.0)
        trace.append(round(lag.pressure, 4))
        smoothed += overload.SMOOTHING * (sample - smoothed)
        busy += overload.SMOOTHING * (1.0 - busy)
        late = min(1.0, max(0.0, (smoothed - 0.002) / 0.018))
        expected.append(round(late if busy >= overload.BUSY_SHARE else 0.0, 4))
    assert trace == expected
    assert trace[:2] == [0.0, 0.0] and max(trace) == 1.0 and trace[-1] == 0.0


def test_a_late_loop_in_a_process_that_barely_runs_sheds_nothing() -> None:
    """The loop waits for a core another process holds (a busy machine): refusing cures nothing."""
    lag = _lag()
    for _ in range(100):
        lag.observe(0.050, cpu_share=0.2)
    assert lag.lag_s > 0.04 and lag.pressure == 0.0 and not any(lag.shed(active=500) for _ in range(1000))


def test_a_single_stall_is_not_overload() -> None:
    lag = _lag()
    for _ in range(50):
        lag.observe(0.0005, cpu_share=1.0)
    lag.observe(0.040, cpu_share=1.0)  # one 40 ms stall (a garbage-collection pass)
    assert lag.pressure < 0.15


def test_the_share_shed_is_the_pressure() -> None:
    lag = LoopLag(low_s=0.0, high_s=0.010, rng=random.Random(7), cores=1.0)
    for _ in range(200):
        lag.observe(0.005, cpu_share=1.0)  # converges to 5 ms, busy
    assert lag.pressure == pytest.approx(0.5, abs=1e-3)
    shed = sum(lag.shed(active=100) for _ in range(20_000)) / 20_000
    assert shed == pytest.approx(0.5, abs=0.02)


def test_a_lagging_loop_with_few_requests_in_it_sheds_nothing() -> None:
    lag = _lag()
    for _ in range(100):
        lag.observe(0.050, cpu_share=1.0)
    assert lag.pressure == 1.0
    assert not any(lag.shed(active=overload.MIN_ACTIVE - 1) for _ in range(1000))
    assert all(lag.shed(active=overload.MIN_ACTIVE) for _ in range(1000))


def test_busy_is_relative_to_the_containers_cpu_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("50000 100000\n")  # half a core
    assert loop_cores(cpu_max) == 0.5
    cpu_max.write_text("max 100000\n")
    assert loop_cores(cpu_max) == 1.0
    assert loop_cores(tmp_path / "absent") == 1.0
    lag = LoopLag(low_s=0.002, high_s=0.020, cores=0.5)
    for _ in range(100):
        lag.observe(0.050, cpu_share=0.45)  # 90 % of its half core
    assert lag.pressure == 1.0
