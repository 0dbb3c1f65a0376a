"""A circuit breaker per backend: stop calling a dead backend, probe it back after a pause.

    closed --(``failures`` in a row)--> open --(pause)--> half-open --(one probe)--> closed | open

- Exactly one request probes a half-open circuit; the rest fail fast until it reports.
- A failed probe re-opens the circuit for twice the previous pause, up to ``max_reset_s`` (Envoy's
  outlier detection: a backend that fails again after its ejection is ejected for longer); a success
  closes it and the pause starts again from ``reset_s``.
- Nothing wedges: the probe holds a lease of ``probe_timeout_s``; a probe that never reports (its
  caller was cancelled, or raised something nobody classified) is taken as failed when the lease
  runs out, so another request probes later. ``release_probe`` hands back a probe that never reached
  the backend (refused before the call) without a verdict.

Only failures count against a backend: what ``dataplane.classify`` calls a timeout or a failure. A
client error (the request was bad) or an overload answer (the backend is alive and says it is full)
proves the backend alive. Pure logic with an injected clock (tests use a simulated one).
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        reset_s: float,
        *,
        max_reset_s: float | None = None,
        probe_timeout_s: float = 5.0,
        clock: Clock = time.monotonic,
    ):
        self._threshold, self._reset_s = failures, reset_s
        self._max_reset_s = max_reset_s if max_reset_s is not None else 16 * reset_s
        self._probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._failures = 0  # consecutive, while closed
        self._opened_at: float | None = None
        self._pause_s = reset_s  # the current open period
        self._probe_until: float | None = None  # the running probe's lease
        self._closed_at = -float("inf")  # when a probe last closed the circuit

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self._pause_s else "open"

    @property
    def pause_s(self) -> float:
        """How long the circuit stays open (doubles with each failed probe)."""
        return self._pause_s

    def allow(self) -> bool:
        """May a request go to the backend now? In half-open, True once: the caller is the probe and
        must report (``success``, ``failure``, ``release_probe``)."""
        if self._opened_at is None:
            return True
        now = self._clock()
        if self._probe_until is not None:
            if now < self._probe_until:
                return False
            self._probe_failed(now)  # the lease ran out with no report: the probe failed
            return False
        if now - self._opened_at < self._pause_s:
            return False
        self._probe_until = now + self._probe_timeout_s
        return True

    @property
    def probing(self) -> bool:
        return self._probe_until is not None

    def probe_now(self) -> None:
        """Half-open at once (the backend says it is ready again): the next request probes it."""
        if self._opened_at is not None and self._probe_until is None:
            self._opened_at = self._clock() - self._pause_s

    def release_probe(self) -> None:
        """The probe this breaker let through never reached the backend (refused before the call)."""
        self._probe_until = None

    @property
    def proven(self) -> bool:
        """Closed, no failure since the last success, and not just back: a backend that closed its
        circuit less than ``reset_s`` ago (a restarted server warming up) is still on probation."""
        return self._opened_at is None and self._failures == 0 and self._clock() - self._closed_at >= self._reset_s

    def success(self) -> None:
        """The backend answered (a prediction, a client error, or an overload answer)."""
        if self._opened_at is not None:
            self._closed_at = self._clock()
        self._failures, self._opened_at, self._probe_until = 0, None, None
        self._pause_s = self._reset_s

    def failure(self, *, probe: bool = False) -> None:
        """A timeout or a failure; ``probe``: of the call ``allow`` let through as the probe."""
        now = self._clock()
        if self._opened_at is not None:
            if probe and self._probe_until is not None:
                self._probe_failed(now)
            return  # a call admitted before the circuit opened: it is open already
        self._failures += 1
        if self._failures >= self._threshold:
            self._opened_at, self._pause_s = now, self._reset_s

    def _probe_failed(self, now: float) -> None:
        self._probe_until = None
        self._opened_at = now
        self._pause_s = min(self._max_reset_s, self._pause_s * 2)

    def retry_after(self) -> float:
        """Seconds until the next probe may run."""
        if self._opened_at is None:
            return 0.0
        if self._probe_until is not None:
            return max(0.0, self._probe_until - self._clock())
        return max(0.0, self._pause_s - (self._clock() - self._opened_at))
