"""The gateway protects itself (Envoy's overload manager): it measures its own event loop's lag and,
when the loop falls behind, refuses prediction requests at the door, before their body is read.

Why: admission control protects the backends, but when the gateway itself is the bottleneck (its
CPU is saturated parsing JSON), every request, refusals included, waits in the loop's queue of ready
callbacks, so refusals get as slow as everything else. A refusal at the door costs a few microseconds
(no body read, no JSON parsed, no backend), so shedding a share of arrivals gives the loop back the
time to serve the rest.

A timer fires every SAMPLE_S; how late it fires is the loop's lag (the work queued ahead of it). The
lag is smoothed (EWMA weight SMOOTHING) into a pressure between 0 and 1, linear from LAG_LOW_S to
LAG_HIGH_S (Envoy's "scaled" overload actions), and each prediction request is refused with that
probability, but only while at least MIN_ACTIVE requests are in progress: a loop that lags with few
requests in it lags for another reason (a garbage-collection pass, an image decoded on a thread
holding the GIL for a moment), and refusing its few requests would cure nothing. Probes, metrics and
pages are never shed: a saturated gateway still says it is alive.

``LoopLag.observe`` is the pure part (tests drive it with a simulated clock); ``start`` runs the timer.
"""

from __future__ import annotations

import asyncio
import random

# Tuning constants.
SAMPLE_S = 0.005  # timer period: 200 wake-ups a second, ~1 ms of CPU a second
SMOOTHING = 0.25  # EWMA weight of the newest lag sample: reacts within a few samples (~20 ms)
LAG_LOW_S = 0.002  # below this smoothed lag nothing is shed (a busy but keeping-up loop lags ~1 ms)
LAG_HIGH_S = 0.020  # at and above this, every prediction request is shed
# Requests in progress below which nothing is shed. At this machine's ~1,000 req/s through the
# gateway with calls of a few ms, ~3-5 are in progress; a saturated loop holds hundreds.
MIN_ACTIVE = 16


class LoopLag:
    def __init__(self, low_s: float = LAG_LOW_S, high_s: float = LAG_HIGH_S, rng: random.Random | None = None):
        if not 0 <= low_s < high_s:
            raise ValueError(f"need 0 <= low < high, got {low_s}, {high_s}")
        self.low_s, self.high_s = low_s, high_s
        self.lag_s = 0.0  # smoothed
        self.pressure = 0.0  # 0..1: the share of prediction requests refused at the door
        self._random = (rng or random.Random()).random
        self._task: asyncio.Task[None] | None = None

    def observe(self, lag_s: float) -> None:
        """One timer's lateness."""
        self.lag_s += SMOOTHING * (max(0.0, lag_s) - self.lag_s)
        self.pressure = min(1.0, max(0.0, (self.lag_s - self.low_s) / (self.high_s - self.low_s)))

    def shed(self, active: int) -> bool:
        """Refuse this request, with ``active`` requests in progress? (One comparison while the loop
        keeps up.)"""
        return self.pressure > 0.0 and active >= MIN_ACTIVE and self._random() < self.pressure

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = loop.time
        while True:
            due = clock() + SAMPLE_S
            await asyncio.sleep(SAMPLE_S)
            self.observe(clock() - due)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
