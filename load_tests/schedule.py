"""The open-loop arrival schedule (no Locust import here, so the rule is testable in any process)."""

from __future__ import annotations

import random
from collections.abc import Iterator


class PoissonSchedule:
    """Intended send times, in seconds from the start: exponential gaps at ``rate`` per second.
    The same seed gives the same schedule, so repeats and both servers see identical arrivals."""

    def __init__(self, rate: float, seed: int):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate, self.seed = rate, seed

    def __iter__(self) -> Iterator[float]:
        rng = random.Random(self.seed)
        t = 0.0
        while True:
            t += rng.expovariate(self.rate)
            yield t


def user_seed(base: int, worker_index: int, user_index: int) -> int:
    """Distinct, reproducible seeds per user and process."""
    return base * 1_000_003 + worker_index * 1009 + user_index
