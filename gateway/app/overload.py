"""The gateway protects itself (Envoy's overload manager): when its own event loop is saturated, it
refuses prediction requests at the door, before their body is read.

Why: admission control protects the backends, but when the gateway itself is the bottleneck (its
CPU is saturated parsing JSON), every request, refusals included, waits in the loop's queue of ready
callbacks, so refusals get as slow as everything else. A refusal at the door costs a few tens of
microseconds (no body read, no JSON parsed, no backend), so shedding a share of arrivals gives the
loop back the time to serve the rest.

Two signals, sampled by a timer every SAMPLE_S, both smoothed (EWMA weight SMOOTHING):
- the loop's lag: how late the timer fires (the work queued ahead of it), turned into a pressure
  between 0 and 1, linear from LAG_LOW_S to LAG_HIGH_S (Envoy's "scaled" overload actions);
- the process's own CPU, as a share of what one event loop can use (one core, or the container's
  CPU quota when that is less). Only a loop that is both late AND busy is its own bottleneck: a
  loop that lags while the process barely runs is waiting for a core another process holds (a busy
  machine, a noisy neighbour), and refusing its requests would cure nothing.

Each prediction request is then refused with probability ``pressure`` (0 unless the process is
busy), and only while at least MIN_ACTIVE requests are in progress (a lag with few requests in the
loop comes from a garbage-collection pass or a moment's contention). Probes, metrics and pages are
never shed: a saturated gateway still says it is alive.

``LoopLag.observe`` is the pure part (tests drive it with simulated samples); ``start`` runs the timer.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

# Tuning constants.
SAMPLE_S = 0.005  # timer period: 200 wake-ups a second, ~1 ms of CPU a second
SMOOTHING = 0.1  # EWMA weight of the newest sample: ~50 ms of memory, so a single stall is not overload
LAG_LOW_S = 0.002  # below this smoothed lag nothing is shed (a busy but keeping-up loop lags ~1 ms)
LAG_HIGH_S = 0.020  # at and above this, every prediction request is shed
BUSY_SHARE = 0.8  # the process uses at least this share of its core: the loop itself is saturated
# Requests in progress below which nothing is shed. At this machine's ~1,000 req/s through the
# gateway with calls of a few ms, ~3-5 are in progress; a saturated loop holds hundreds.
MIN_ACTIVE = 16
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def loop_cores(cpu_max: Path = CGROUP_CPU_MAX) -> float:
    """What one event loop can use: a core, or less when the container's CPU quota is smaller."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return 1.0
    return 1.0 if quota == "max" else min(1.0, int(quota) / int(period))


class LoopLag:
    def __init__(
        self,
        low_s: float = LAG_LOW_S,
        high_s: float = LAG_HIGH_S,
        rng: random.Random | None = None,
        cores: float | None = None,
    ):
        if not 0 <= low_s < high_s:
            raise ValueError(f"need 0 <= low < high, got {low_s}, {high_s}")
        self.low_s, self.high_s = low_s, high_s
        self.cores = loop_cores() if cores is None else cores
        self.lag_s = 0.0  # smoothed
        self.busy = 0.0  # smoothed share of the process's core in use
        self.pressure = 0.0  # 0..1: the share of prediction requests refused at the door
        self._random = (rng or random.Random()).random
        self._task: asyncio.Task[None] | None = None

    def observe(self, lag_s: float, cpu_share: float) -> None:
        """One timer's lateness, and the process's CPU over the same period (cores)."""
        self.lag_s += SMOOTHING * (max(0.0, lag_s) - self.lag_s)
        self.busy += SMOOTHING * (cpu_share / self.cores - self.busy)
        late = min(1.0, max(0.0, (self.lag_s - self.low_s) / (self.high_s - self.low_s)))
        self.pressure = late if self.busy >= BUSY_SHARE else 0.0

    def shed(self, active: int) -> bool:
        """Refuse this request, with ``active`` requests in progress? (One comparison while the loop
        keeps up.)"""
        return self.pressure > 0.0 and active >= MIN_ACTIVE and self._random() < self.pressure

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        clock = asyncio.get_running_loop().time
        cpu = time.process_time
        while True:
            due, cpu0, wall0 = clock() + SAMPLE_S, cpu(), time.perf_counter()
            await asyncio.sleep(SAMPLE_S)
            wall = time.perf_counter() - wall0
            self.observe(clock() - due, (cpu() - cpu0) / wall if wall > 0 else 0.0)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
