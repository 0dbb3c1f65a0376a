"""The open-loop arrival schedule (no Locust import here, so the rule is testable in any process).

One seeded Poisson schedule at the full rate is the run's arrivals; ``processes`` generator
processes split it by sequence number (process k sends arrivals k, k + n, k + 2n, ...). Together they
send exactly the same arrivals whatever n is, so a point measured with 1 or 4 processes sees the same
Poisson process at the full rate (each process's own share is a thinned, more regular stream)."""

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


def share(schedule: PoissonSchedule, part: int, parts: int) -> Iterator[tuple[int, float]]:
    """(global sequence number, intended offset) of every arrival that process ``part`` of ``parts`` sends."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} is not in 0..{parts - 1}")
    for seq, offset in enumerate(schedule):
        if seq % parts == part:
            yield seq, offset


def user_seed(base: int, user_index: int) -> int:
    """Distinct, reproducible seeds for several schedules in one run (user 0 keeps ``base``, so a run's
    arrivals depend on its seed alone, not on how many processes send them)."""
    return base if user_index == 0 else base * 1_000_003 + user_index
