"""The measurement rules on synthetic inputs: windows, stability, capacity search, CI, validity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from load_tests import stats
from load_tests.stats import Point, Window


def _point(rate: float, p99: float, failed: int = 0) -> Point:
    return Point(rate, p99 / 2, p99, rate, 3000, failed, True, 3)


def test_windows_group_by_intended_time_and_drop_the_warmup_and_the_tail() -> None:
    t = np.arange(0, 10, 0.01)  # 100 req/s for 10 s
    ms = np.full(len(t), 2.0)
    ok = np.ones(len(t), dtype=bool)
    ms[(t >= 5) & (t < 7)] = 50.0  # a slow stretch
    ws = stats.split_windows(t, ms, ok, warmup_s=1.0, window_s=2.0)
    assert [w.start_s for w in ws] == [1.0, 3.0, 5.0, 7.0]  # 9..10 is partial: dropped
    assert [w.completed for w in ws] == [200, 200, 200, 200]
    assert ws[2].p99_ms == 50.0 and ws[0].p99_ms == 2.0
    assert ws[0].throughput == pytest.approx(100.0)


def test_unanswered_requests_count_as_failed_and_infinitely_slow() -> None:
    t = np.arange(0, 3, 0.01)
    ms = np.full(len(t), 1.0)
    ok = np.ones(len(t), dtype=bool)
    ok[::50] = False  # 2 % never answered: p99 must be infinite, not hidden
    (w,) = stats.split_windows(t, ms, ok, warmup_s=0.0, window_s=2.5)
    assert w.failed == 5 and w.completed == 245
    assert math.isinf(w.p99_ms)


@pytest.mark.parametrize(
    ("throughputs", "p99s", "expected"),
    [
        ([100, 100, 100], [5.0, 5.0, 5.0], True),
        ([95, 100, 105], [4.6, 5.0, 5.4], True),  # within ±10 % of the mean
        ([80, 100, 100], [5.0, 5.0, 5.0], False),  # throughput off by > 10 %
        ([100, 100, 100], [5.0, 5.0, 7.0], False),  # p99 off
        ([50, 100, 100, 100], [40.0, 5.0, 5.0, 5.0], True),  # only the last three count
        ([100, 100], [5.0, 5.0], False),  # too few windows
        ([100, 100, 100], [5.0, 5.0, math.inf], False),
    ],
)
def test_stability_rule(throughputs: list[float], p99s: list[float], expected: bool) -> None:
    ws = [Window(i, 1.0, int(n), 0, p) for i, (n, p) in enumerate(zip(throughputs, p99s, strict=True))]
    assert stats.stable(ws) is expected


def test_window_length_gives_the_minimum_sample_count() -> None:
    assert stats.window_seconds(5000, 2.0) == 2.0
    w = stats.window_seconds(100, 2.0)
    assert w * 100 * stats.STABLE_WINDOWS == pytest.approx(stats.MIN_STEP_SAMPLES)


def _server(capacity: float):
    """A synthetic server: p99 grows like an M/M/1 queue's and crosses 10 ms just below ``capacity``."""

    def measure(rate: float) -> Point:
        if rate >= capacity:
            return _point(rate, 500.0)
        return _point(rate, 1.0 / (1 - rate / capacity))  # 10 ms at 0.9 x capacity

    return measure


@pytest.mark.parametrize("capacity", [37.0, 800.0, 1234.0, 9000.0])
def test_search_brackets_the_slo_rate_within_the_tolerance(capacity: float) -> None:
    truth = 0.9 * capacity  # where p99 reaches 10 ms
    s = stats.search_capacity(_server(capacity), 10.0, 200.0)
    assert s.qps <= truth <= s.ceiling
    assert s.ceiling <= s.qps * (1 + stats.CAPACITY_TOLERANCE) + 1e-9
    assert s.at_qps is not None and s.at_qps.passes(10.0)
    assert s.at_ceiling is not None and not s.at_ceiling.passes(10.0)


def test_search_from_a_bracket_widens_it_when_wrong() -> None:
    truth = 0.9 * 1000
    for bracket in ((700.0, 800.0), (950.0, 1100.0), (850.0, 950.0)):
        s = stats.search_capacity(_server(1000), 10.0, 200.0, bracket=bracket)
        assert s.qps <= truth <= s.ceiling <= s.qps * 1.05 + 1e-9
    tight = stats.search_capacity(_server(1000), 10.0, 200.0, bracket=(850.0, 950.0))
    assert len(tight.steps) < len(stats.search_capacity(_server(1000), 10.0, 200.0).steps)


def test_a_failure_fails_the_point_whatever_the_latency() -> None:
    s = stats.search_capacity(lambda r: _point(r, 1.0, failed=int(r > 300)), 10.0, 100.0)
    assert 285 <= s.qps <= 300 < s.ceiling


def test_nothing_passes_gives_zero() -> None:
    s = stats.search_capacity(lambda r: _point(r, 50.0), 10.0, 100.0)
    assert s.qps == 0.0 and s.at_qps is None


def test_ci95_matches_the_student_t_interval() -> None:
    mean, lo, hi = stats.mean_ci95([100.0, 110.0, 90.0])
    # s = 10, n = 3, t(0.975, 2) = 4.303: half-width 24.84
    assert mean == 100.0
    assert hi - mean == pytest.approx(24.84, abs=0.01) and mean - lo == pytest.approx(24.84, abs=0.01)
    assert math.isnan(stats.mean_ci95([5.0])[1])


@pytest.mark.parametrize(
    ("share", "idle", "impact", "rules"),
    [
        (0.5, 0.4, 0.2, []),
        (0.75, 0.4, 0.2, ["generator CPU"]),  # its whole CPU, a precise wait's spin included
        (0.5, 0.04, 0.2, ["machine idle"]),  # no idle left
        (0.5, 0.06, 0.2, []),
        (0.5, 0.4, 0.6, ["send lag"]),  # the lag moved the p99 by 0.6 ms > 5 % of 10 ms
        (0.9, 0.02, 3.0, ["generator CPU", "machine idle", "send lag"]),
        (math.nan, math.nan, math.nan, []),  # unknown trips nothing (a point without marks)
    ],
)
def test_the_guard_rules(share: float, idle: float, impact: float, rules: list[str]) -> None:
    got = stats.invalid_reasons(share, idle, impact, slo_ms=10.0)
    assert [stats.guard_rule(r) for r in got] == rules


def test_the_send_lag_rule_judges_what_the_lag_did_to_the_p99_not_the_lag_itself() -> None:
    """Send lag is inside every latency (it counts from the intended time). A lag that is large but
    falls on fast requests does not move the p99; the same lag on the slow tail does."""
    rng = np.random.default_rng(1)
    latency = rng.uniform(1.0, 3.0, 10_000)
    latency[:150] = 9.0  # the tail: 1.5 % of requests at 9 ms, so p99 = 9 ms
    lag = np.zeros_like(latency)
    lag[5000:5100] = 3.0  # 1 % of requests left 3 ms late, all among the fast ones
    latency_with = latency + lag
    impact, without = stats.lag_impact_ms(latency_with, lag)
    assert stats.percentile_ms(lag, 99) == 3.0  # the old rule (lag p99 > 0.5 ms) would flag this point
    assert impact == pytest.approx(0.0) and without == pytest.approx(9.0)
    assert stats.invalid_reasons(0.3, 0.5, impact, slo_ms=10.0) == []
    lag_tail = np.zeros_like(latency)
    lag_tail[:150] = 3.0  # the same lag on the slow requests: the p99 moves by 3 ms
    impact, _ = stats.lag_impact_ms(latency + lag_tail, lag_tail)
    assert impact == pytest.approx(3.0)
    assert [stats.guard_rule(r) for r in stats.invalid_reasons(0.3, 0.5, impact, slo_ms=10.0)] == ["send lag"]


def test_lag_impact_of_a_point_that_mostly_failed_is_none() -> None:
    latency = np.full(100, np.inf)  # never answered: infinitely slow with or without the lag
    assert stats.lag_impact_ms(latency, np.full(100, 5.0))[0] == 0.0


def test_the_search_never_offers_more_than_max_rate_and_reaches_it() -> None:
    seen: list[float] = []

    def measure(rate: float) -> Point:
        seen.append(rate)
        return _point(rate, 1.0)

    assert stats.search_capacity(measure, 10.0, 40.0, max_rate=60.0).qps == 60.0
    assert stats.search_capacity(measure, 10.0, 40.0, max_rate=60.0, bracket=(51.0, 69.0)).qps == 60.0
    assert max(seen) == 60.0
