"""The generator's calibration counts every guard reason (load_tests/runs/harness.py).

Before 2026-12 it counted only reasons naming the generator, so a rate whose send lag tripped the
guard still raised the ceiling: the committed report claimed 2,000 req/s per process where the
send-lag p99 was 3.4 ms. The calibration's rates are measured here by a stand-in for the point
runner that returns what such a machine measured (a fault injected, so no server is needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from load_tests import stats
from load_tests.measure.point import PointConfig
from load_tests.runs import harness
from load_tests.targets import Endpoints, Target


def _machine(reasons_at: dict[float, list[str]], failed_at: float = 1e9):
    """Points as a 2-core machine measured them: clean below 2,000 req/s, the given reasons above."""
    seen: list[float] = []

    def measure(target: Target, rate: float, seed: int, cfg: PointConfig, ep: Endpoints, out: Path, tag: str):
        seen.append(rate)
        p = stats.Point(rate, 0.2, 1.0, rate, 3000, 10 if rate >= failed_at else 0, True, 3,
                        list(reasons_at.get(rate, [])))  # fmt: skip
        p.extra.update(generator_processes=1, generator_core_share=rate / 4000, generator_cpu_us_per_req=250.0,
                       send_lag_p50_ms=0.03, send_lag_p99_ms=3.4 if rate >= 2000 else 0.3,
                       lag_impact_ms=0.8 if rate >= 2000 else 0.01, machine_idle=0.4)  # fmt: skip
        return p

    return measure, seen


@pytest.mark.parametrize(
    "reason",
    [
        "send lag moved p99 by 0.80 ms (> 5% of the 10 ms SLO)",  # names no generator: ignored before
        "machine idle 3.0% (< 5%)",  # likewise
        "generator CPU 82% of a core (> 70%, waits included)",
    ],
)
def test_a_rate_tripping_any_guard_rule_is_not_held(reason: str, tmp_path: Path) -> None:
    measure, seen = _machine({2000.0: [reason]})
    cal = harness.run_calibration(PointConfig(slo_ms=10.0), tmp_path, 1, Endpoints(), measure)
    assert seen == [500.0, 1000.0, 2000.0]  # it stops at the first rate that does not hold
    assert cal.ceiling_rps == 1000.0  # the old rule gave 2,000 for the first two reasons
    assert [p.ok for p in cal.points] == [True, True, False]
    assert cal.points[-1].reasons == [reason]


def test_a_failing_rate_is_not_held_either(tmp_path: Path) -> None:
    measure, _ = _machine({}, failed_at=4000.0)
    cal = harness.run_calibration(PointConfig(slo_ms=10.0), tmp_path, 1, Endpoints(), measure)
    assert cal.ceiling_rps == 2000.0 and cal.cpu_us_per_req == 250.0
