"""The Poisson schedule and its split across generator processes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from load_tests.generator.schedule import PoissonSchedule, share, user_seed


def _take(schedule: PoissonSchedule, n: int) -> np.ndarray:
    return np.fromiter(itertools.islice(schedule, n), float)


def _gaps_look_exponential(t: np.ndarray, rate: float) -> None:
    gaps = np.diff(np.concatenate([[0.0], t]))
    assert len(t) / t[-1] == pytest.approx(rate, rel=0.03)
    assert np.all(gaps > 0)
    # Exponential: the standard deviation equals the mean, and ~63 % of gaps are below it.
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)
    assert (gaps < gaps.mean()).mean() == pytest.approx(1 - math.exp(-1), abs=0.02)


@pytest.mark.parametrize("rate", [50.0, 1000.0, 20000.0])
def test_schedule_has_the_rate_and_exponential_gaps(rate: float) -> None:
    _gaps_look_exponential(_take(PoissonSchedule(rate, seed=7), 20000), rate)


def test_schedule_is_reproducible_per_seed() -> None:
    a, b = _take(PoissonSchedule(300, 1), 500), _take(PoissonSchedule(300, 1), 500)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _take(PoissonSchedule(300, 2), 500))
    assert len({user_seed(1, u) for u in range(16)}) == 16 and user_seed(5, 0) == 5
    with pytest.raises(ValueError):
        PoissonSchedule(0, 1)


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_processes_together_send_exactly_the_one_schedule(parts: int) -> None:
    rate, n = 2000.0, 20000
    whole = list(itertools.islice(enumerate(PoissonSchedule(rate, 11)), n))
    shares = [list(itertools.takewhile(lambda r: r[0] < n, share(PoissonSchedule(rate, 11), k, parts)))
              for k in range(parts)]  # fmt: skip
    merged = sorted(itertools.chain.from_iterable(shares))
    assert merged == whole  # the same arrivals, the same sequence numbers, whatever the process count
    assert all(abs(len(s) - n / parts) <= 1 for s in shares)  # each process gets its fair share
    # ... and together they are Poisson at the full rate.
    _gaps_look_exponential(np.array([t for _, t in merged]), rate)


def test_a_share_outside_the_processes_is_refused() -> None:
    with pytest.raises(ValueError):
        next(share(PoissonSchedule(10, 1), 2, 2))
