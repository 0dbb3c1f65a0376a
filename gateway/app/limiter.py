"""An adaptive concurrency limit per backend, in rows (Netflix concurrency-limits' Gradient2, with
Envoy's clamps): how many rows the gateway lets a backend work on at once.

Why adaptive: a fixed limit is either too high (under overload the backend's own queue fills and
everything admitted waits in it, where the gateway can no longer refuse it) or too low (it refuses
what a healthy backend would serve at once). The limit follows the backend's round-trip time (RTT):
while calls take about as long as they do unloaded, it may grow; when they take longer, work is
queueing inside the backend and it shrinks.

Per sample window (WINDOW_S, at least MIN_WINDOW_SAMPLES calls) the window's mean RTT is compared
with a long-run RTT (an exponential average over LONG_WINDOW_S of windows):

    gradient  = clamp(TOLERANCE x long / short, 0.5, 1.0)    # 1: no queueing; 0.5 at most halves
    new       = limit x gradient + sqrt(limit)                 # sqrt(limit): room for bursts
    limit     = limit x (1 - SMOOTHING) + new x SMOOTHING, clamped to [min, max]

``max`` is what the server's own batch queue holds (the gateway never sends more than it could
queue). An overload answer from the backend (its queue is full) halves the limit at once, AIMD's
multiplicative decrease: the signal is unambiguous.

Every estimate decays, so nothing latches after a stall:
- when the long RTT is more than twice the window's, it falls 5 % per window (Gradient2's long-RTT
  decay: it otherwise remembers a stall's multi-second calls for a long time);
- while the backend is app-limited (less than half the limit in use) the limit relaxes back towards
  its initial value (a time constant of RECOVER_S): after a stall a later burst meets the same limit
  as before it, within seconds;
- ``rtt()`` (what the admission queue predicts waits from) is the last window's RTT while calls keep
  completing; once none has completed for a while it moves (geometrically, with time constant
  STALE_S: a stall's 1.5 s and a healthy 5 ms differ 300-fold) to the unloaded RTT, the lowest
  window seen, which falls at once and rises by at most ~1 % a window however slow a window was.
  So a stall's slow calls do not refuse a burst seconds after it ended.

Pure logic with an injected clock (tests drive it with a simulated one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

# Tuning constants (Gradient2's defaults where it has one).
TOLERANCE = 1.5  # the RTT may grow by half over the long-run RTT before the limit shrinks
SMOOTHING = 0.2  # share of a window's new limit taken at once
WINDOW_S = 0.1  # a sample window: the limit moves at most 10 times a second ...
MIN_WINDOW_SAMPLES = 10  # ... and only on windows with enough calls to mean something
LONG_WINDOW_S = 10.0  # memory of the long-run RTT
LONG_DECAY = 0.95  # per window, while the long RTT is more than twice the window's
RECOVER_S = 2.0  # time constant of the app-limited limit's return to its initial value
STALE_S = 0.5  # time constant of the last window's RTT giving way to the unloaded one, with no calls
OVERLOAD_FACTOR = 0.5  # a backend's "queue full" answer halves the limit


@dataclass(frozen=True)
class LimitSettings:
    initial: float  # rows
    min_limit: float = 1.0
    max_limit: float = 1024.0  # what the server's batch queue holds, in rows


class GradientLimit:
    """The limit (rows) and the RTT estimates of one backend. Call ``sample`` after each completed
    call, ``overloaded`` on the backend's own overload answer; read ``limit`` and ``rtt(now)``."""

    def __init__(self, settings: LimitSettings, clock: Clock = time.monotonic):
        if not settings.min_limit <= settings.initial <= settings.max_limit:
            raise ValueError(f"limits out of order: {settings}")
        self.settings, self.clock = settings, clock
        self.limit = float(settings.initial)
        self.long_rtt = math.nan  # s; nan until the first window
        self.short_rtt = math.nan  # s; the last window's mean
        self.noload_rtt = math.nan  # s; the lowest window, rising slowly
        self._last_sample = -math.inf  # when a call last completed
        self._window_start = clock()
        self._window_sum = 0.0
        self._window_n = 0
        self._window_peak = 0.0  # the most rows in flight during the window
        self._updated_at = self._window_start

    def sample(self, rtt_s: float, inflight_rows: float) -> None:
        """One completed call: its round trip and the rows in flight when it started."""
        now = self._last_sample = self.clock()
        self._window_sum += rtt_s
        self._window_n += 1
        self._window_peak = max(self._window_peak, inflight_rows)
        if now - self._window_start >= WINDOW_S and self._window_n >= MIN_WINDOW_SAMPLES:
            self._close_window(now)

    def _close_window(self, now: float) -> None:
        short = self._window_sum / self._window_n
        peak = self._window_peak
        self._window_start, self._window_sum, self._window_n, self._window_peak = now, 0.0, 0, 0.0
        if math.isnan(self.long_rtt):
            self.long_rtt = self.noload_rtt = short
        else:
            weight = 1.0 - math.exp(-WINDOW_S / LONG_WINDOW_S)
            self.long_rtt += weight * (short - self.long_rtt)
            if self.long_rtt > 2 * short:
                self.long_rtt *= LONG_DECAY
            # falls at once; rises by at most ~1 % a window, however long the window's calls took
            self.noload_rtt = min(short, self.noload_rtt * (1 + weight))
        self.short_rtt = short
        if peak < self.limit / 2:  # app-limited: no evidence about a larger limit; recover instead
            self._relax(now)
            return
        gradient = max(0.5, min(1.0, TOLERANCE * self.long_rtt / short))
        new = self.limit * gradient + math.sqrt(self.limit)
        self._set(self.limit * (1 - SMOOTHING) + new * SMOOTHING, now)

    def overloaded(self) -> None:
        """The backend answered that its queue is full: halve now (no window to wait for)."""
        self._set(self.limit * OVERLOAD_FACTOR, self.clock())

    def _relax(self, now: float) -> None:
        """Towards the initial limit, for the time since the last update (app-limited or idle)."""
        elapsed = now - self._updated_at
        if elapsed > 0 and self.limit < self.settings.initial:
            self.limit += (self.settings.initial - self.limit) * (1 - math.exp(-elapsed / RECOVER_S))
        self._updated_at = now

    def _set(self, limit: float, now: float) -> None:
        s = self.settings
        self.limit = max(s.min_limit, min(s.max_limit, limit))
        self._updated_at = now

    def current(self, inflight_rows: float) -> float:
        """The limit now. A backend using less than half of it (idle, or a stall's last call just
        returned) recovers towards the initial limit meanwhile; a busy one waits for its window."""
        if self.limit < self.settings.initial and inflight_rows < self.limit / 2:
            self._relax(self.clock())
        return self.limit

    @property
    def last_sample_at(self) -> float:
        """Clock time of the last completed call (-inf before the first)."""
        return self._last_sample

    def rtt(self) -> float:
        """The RTT to expect now: the last window's, giving way to the unloaded one (geometrically)
        as the time since the last completed call grows (nan before the first window)."""
        if math.isnan(self.short_rtt):
            return math.nan
        age = self.clock() - self._last_sample
        if age <= 0:
            return self.short_rtt
        w = math.exp(-age / STALE_S)
        return self.short_rtt**w * self.noload_rtt ** (1 - w)
