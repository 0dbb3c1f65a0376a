"""Admission control: what a backend cannot start in time is refused at once, not queued without bound.

Per backend, at most ``limit`` calls are in flight; up to ``queue`` more wait, each for at most the
queue deadline (or its own, shorter, client deadline). What cannot start in time gets an immediate
503 with ``Retry-After`` (the way TF Serving refuses past ``max_enqueued_batches`` and TorchServe
past ``job_queue_size``), so the gateway never holds a queue that only grows until everything times
out. With ``client_share`` < 1 one client (API key, else address) may hold at most that share of a
backend's slots while others wait: past it, 429.

A request is queued only when it expects a slot within half its deadline: the n-th in line expects
n x (the wait one place in the queue took lately), a moving average of what waiters actually waited
per place ahead of them (it counts whatever drains the queue, the event loop's own delays included;
before any waiter, the mean call time / limit: Little's law over the slots). Past that it is refused
at once, so under overload refusals cost microseconds and what is admitted starts in time; the queue
deadline stays as the backstop for calls slower than the average (counted apart: ``queue_timeout``).

The fast path (a free slot and nobody waiting) is two integer operations; waiting is a future in a
FIFO handed the slot by the call that frees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque

from gateway.app.core.errors import APIError

# Seconds a refused client is told to wait (Retry-After is whole seconds): long enough for a queue
# of a few milliseconds' work to drain, short enough that a retrying client barely notices.
RETRY_AFTER_S = 1
# Weight of the newest sample in the moving averages: ~20 samples' memory, so the estimate follows
# a backend that slows down within milliseconds at these rates but ignores one outlier.
EWMA = 0.05
# A request is queued only if it expects a slot within this share of its deadline: queue waits vary
# (a slow call, the event loop's own work), and the margin keeps refusals by timeout, which cost the
# whole deadline, rare.
EXPECTED_WAIT_SHARE = 0.5
# Calls observed before the expected wait is trusted: the first calls to a backend are slow (new
# connections, a server's first runs), and one of them alone would refuse a whole burst at start-up
# (seen in compose: 570 ms "expected" from a cold first call). Until then only the deadline refuses.
MIN_CALLS_OBSERVED = 32


class Shed(APIError):
    """A request refused before it reached the backend; ``reason`` labels the metric."""

    def __init__(self, status: int, type_: str, reason: str, message: str, retry_after_s: float = RETRY_AFTER_S):
        super().__init__(status, type_, message)
        self.reason = reason
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))} if status != 504 else {}


def overloaded(backend: str, reason: str, detail: str) -> Shed:
    return Shed(503, "overloaded", reason, f"{backend} is at capacity: {detail}; retry later")


def deadline_exceeded(detail: str) -> Shed:
    return Shed(504, "deadline_exceeded", "deadline", f"the request's deadline {detail}")


class Admission:
    def __init__(self, backend: str, limit: int, queue: int, queue_timeout_s: float, client_share: float = 1.0):
        self.backend, self.limit, self.queue, self.queue_timeout_s = backend, limit, queue, queue_timeout_s
        self.inflight = 0
        self.call_s = 0.0  # moving average of call times
        self.calls = 0  # calls observed (nothing is predicted before MIN_CALLS_OBSERVED)
        self.place_s = 0.0  # moving average of the wait per place in the queue (0: none yet)
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Per-client slot counts are kept only when shares are enforced (the default costs nothing).
        self._share_slots = max(1, int((limit + queue) * client_share)) if client_share < 1 else 0
        self._held: dict[str, int] = {}

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, client: str = "", deadline: float | None = None) -> None:
        """Take a slot, waiting at most the queue deadline (or until ``deadline``, time.monotonic())."""
        if self._share_slots:
            self._check_share(client)
        if self.inflight < self.limit and not self._waiters:
            self.inflight += 1
            self._hold(client)
            return
        if len(self._waiters) >= self.queue:
            raise overloaded(self.backend, "queue_full", f"{self.limit} in flight and {self.queue} waiting")
        wait = self.queue_timeout_s
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise deadline_exceeded("passed before a slot was free")
        place = len(self._waiters) + 1
        expected = place * (self.place_s or self.call_s / self.limit)
        if self.calls >= MIN_CALLS_OBSERVED and expected > wait * EXPECTED_WAIT_SHARE:
            if wait < self.queue_timeout_s:
                raise deadline_exceeded(f"would pass before a slot is free (expected wait {expected * 1e3:.1f} ms)")
            raise overloaded(
                self.backend,
                "queue_full",
                f"{self.limit} in flight and {len(self._waiters)} waiting, a slot expected in "
                f"{expected * 1e3:.1f} ms (> half the {self.queue_timeout_s * 1e3:g} ms queue deadline)",
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        queued_at = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                await fut
        except TimeoutError:
            if fut.done() and not fut.cancelled():  # handed a slot as the timer fired: give it back
                self.release()
            self._learn(wait / place)  # at least this long per place: a lower bound, still news
            if deadline is not None and wait < self.queue_timeout_s:
                raise deadline_exceeded("passed while waiting for a slot") from None
            raise overloaded(
                self.backend, "queue_timeout", f"no slot free within {self.queue_timeout_s * 1e3:g} ms"
            ) from None
        except BaseException:  # the client went away: a slot handed over must not leak
            if fut.done() and not fut.cancelled():
                self.release()
            raise
        finally:
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(ValueError):  # already popped by release()
                self._waiters.remove(fut)
        self._learn((time.monotonic() - queued_at) / place)
        self._hold(client)

    def _learn(self, per_place: float) -> None:
        self.place_s = per_place if not self.place_s else self.place_s + EWMA * (per_place - self.place_s)

    def observe(self, seconds: float) -> None:
        """One call's time, for the expected wait."""
        self.calls += 1
        self.call_s = seconds if not self.call_s else self.call_s + EWMA * (seconds - self.call_s)

    def release(self, client: str | None = None) -> None:
        """Free a slot: handed to the first waiter still waiting, else returned."""
        if client is not None and self._share_slots:
            held = self._held.get(client, 0) - 1
            if held > 0:
                self._held[client] = held
            else:
                self._held.pop(client, None)
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes over: inflight is unchanged
                return
        self.inflight -= 1

    def _hold(self, client: str) -> None:
        if self._share_slots:
            self._held[client] = self._held.get(client, 0) + 1

    def _check_share(self, client: str) -> None:
        # Only under contention: an idle gateway serves one client as fast as it can.
        if (self._waiters or self.inflight >= self.limit) and self._held.get(client, 0) >= self._share_slots:
            raise Shed(
                429,
                "over_share",
                "client_share",
                f"this client holds {self._held[client]} of {self.backend}'s {self.limit + self.queue} slots, "
                f"its share while others wait; retry later",
            )
