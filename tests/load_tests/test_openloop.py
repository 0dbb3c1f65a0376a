"""The Poisson schedule, the intended-time table and the point analysis, on synthetic inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from load_tests import measure, stats
from load_tests.schedule import PoissonSchedule, user_seed


def _take(schedule: PoissonSchedule, n: int) -> np.ndarray:
    return np.fromiter(itertools.islice(schedule, n), float)


@pytest.mark.parametrize("rate", [50.0, 1000.0, 20000.0])
def test_schedule_has_the_rate_and_exponential_gaps(rate: float) -> None:
    t = _take(PoissonSchedule(rate, seed=7), 20000)
    gaps = np.diff(np.concatenate([[0.0], t]))
    assert len(t) / t[-1] == pytest.approx(rate, rel=0.03)
    assert np.all(gaps > 0)
    # Exponential: the standard deviation equals the mean, and ~63 % of gaps are below it.
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)
    assert (gaps < gaps.mean()).mean() == pytest.approx(1 - math.exp(-1), abs=0.02)


def test_schedule_is_reproducible_per_seed() -> None:
    a, b = _take(PoissonSchedule(300, 1), 500), _take(PoissonSchedule(300, 1), 500)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _take(PoissonSchedule(300, 2), 500))
    assert len({user_seed(1, w, u) for w in range(4) for u in range(4)}) == 16
    with pytest.raises(ValueError):
        PoissonSchedule(0, 1)


def test_latency_counts_from_the_intended_time_and_unanswered_stay_failed() -> None:
    sent = [0.0, 0.1, 0.2, 0.3]
    # Request 1 left 5 ms late (send lag) and took 1 ms on the wire: 6 ms from its intended time.
    done: dict[str, list[float]] = {
        "seq": [0, 1, 3],
        "t": [0.0, 0.1, 0.3],
        "ms": [1.0, 6.0, 2.0],
        "lag_ms": [0.1, 5.0, 0.1],
        "ok": [1.0, 1.0, 0.0],
        "batch": [1, 2, 0],
    }
    table = stats.open_loop_table(sent, done)
    assert list(table["ms"][:2]) == [1.0, 6.0]
    assert math.isinf(table["ms"][2]) and not table["ok"][2]  # never answered
    assert math.isinf(table["ms"][3]) and not table["ok"][3]  # answered wrongly
    assert table["lag_ms"][1] == 5.0 and list(table["batch"]) == [1, 2, 0, 0]


def _synthetic_run(rate: float, seconds: float, latency_ms: float, lag_ms: float) -> dict:
    t = _take(PoissonSchedule(rate, 3), int(rate * seconds))
    t = t[t < seconds]
    n = len(t)
    origin = 1000.0
    marks = [[origin + s, 0.3 * s, 60.0 * s, 140.0 * s, 0.0] for s in np.arange(0, seconds + 0.5, 0.5)]
    return {
        "sent": {"x": list(t)},
        "done": {
            "x": {
                "seq": list(range(n)),
                "t": list(t),
                "ms": [latency_ms] * n,
                "lag_ms": [lag_ms] * n,
                "ok": [1.0] * n,
                "batch": [0] * n,
            }
        },
        "origin": origin,
        "marks": marks,
    }


def test_analysis_of_a_steady_run() -> None:
    cfg = measure.PointConfig(slo_ms=10.0, warmup_s=1.0, min_window_s=2.0, max_windows=4)
    p = measure.analyse([_synthetic_run(1000, 9.5, 2.0, 0.1)], "x", 1000, cfg, 2.0)
    assert p.stable and p.windows == 4 and p.valid
    assert p.p99_ms == 2.0 and p.failed == 0 and p.passes(10.0)
    assert p.throughput == pytest.approx(1000, rel=0.05)
    assert p.extra["generator_core_share"] == pytest.approx(0.3)
    assert p.extra["machine_idle"] == pytest.approx(0.7)
    assert p.extra["generator_cpu_us_per_req"] == pytest.approx(300, rel=0.06)


def test_analysis_flags_a_lagging_generator() -> None:
    cfg = measure.PointConfig(slo_ms=10.0, warmup_s=1.0, min_window_s=2.0, max_windows=4)
    p = measure.analyse([_synthetic_run(1000, 9.5, 2.0, 0.9)], "x", 1000, cfg, 2.0)
    assert not p.valid and any("send lag" in r for r in p.invalid)
    assert p.passes(10.0)  # the SLO verdict and the validity flag are separate


def test_batch_sizes_from_request_headers_count_each_batch_once() -> None:
    from load_tests.scrape import batch_from_requests

    # Two batches of 4 (8 requests reporting 4) and four single requests: 6 batches, mean 2.
    b = batch_from_requests(np.array([4] * 8 + [1] * 4 + [0] * 3))
    assert b is not None and b["mean"] == pytest.approx(2.0)
    assert b["hist"] == pytest.approx({"≤1": 4 / 6, "≤4": 2 / 6})
    assert batch_from_requests(np.zeros(5, dtype=int)) is None
    assert stats.percentile_ms(np.array([]), 99) != stats.percentile_ms(np.array([]), 99)  # nan
