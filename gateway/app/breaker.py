"""A circuit breaker per backend: stop calling a dead backend, probe it back after a pause."""

from __future__ import annotations

import time


class CircuitBreaker:
    """closed -> (``failures`` in a row) -> open -> (``reset_s`` later) -> one probe -> closed or open."""

    def __init__(self, failures: int, reset_s: float):
        self._threshold, self._reset_s = failures, reset_s
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._closed_at = -float("inf")  # when a probe last closed the circuit

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self._opened_at >= self._reset_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True  # exactly one request probes; the rest still fail fast
            return True
        return False

    def probe_now(self) -> None:
        """Half-open at once (the backend says it is ready again): the next request probes it."""
        if self._opened_at is not None:
            self._opened_at = time.monotonic() - self._reset_s

    def release_probe(self) -> None:
        """The probe this breaker let through never reached the backend (refused before the call)."""
        self._probing = False

    @property
    def proven(self) -> bool:
        """Closed, no failure since the last success, and not just back: a backend that closed its
        circuit less than ``reset_s`` ago (a restarted server warming up) is still on probation."""
        return self._opened_at is None and self._failures == 0 and time.monotonic() - self._closed_at >= self._reset_s

    def success(self) -> None:
        if self._opened_at is not None:
            self._closed_at = time.monotonic()
        self._failures, self._opened_at, self._probing = 0, None, False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at = time.monotonic()
        self._probing = False

    def retry_after(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._reset_s - (time.monotonic() - self._opened_at))
