"""Admission control: what a backend cannot start in time is refused at once, not queued without bound.

Per backend, at most ``limit`` ROWS are in flight, where the limit adapts to the backend
(limiter.GradientLimit: it shrinks when calls take longer than the backend's long-run round trip,
halves on the backend's own "queue full", and recovers when the pressure is gone). A request's cost
is its rows, so 32 requests of 256 rows are not admitted as if they were 32 rows. A request larger
than the whole limit still runs, alone.

Beyond the limit, up to ``queue_rows`` more rows wait in one FIFO, each for at most the queue
deadline (or its own, shorter, client deadline). A request is queued only when it expects to start
within EXPECTED_WAIT_SHARE of that wait; the expected wait is Little's law over the limit: the rows
ahead of it and its own, times the backend's current round trip, over the limit (both decay, so a
stall long past does not refuse today's burst). Past that it is refused at once (503, or 504 when
the client's own deadline is the binding one), so under overload refusals cost microseconds and what
is admitted starts in time. The queue deadline stays as the backstop (``queue_timeout``).

``precheck`` runs before the request's body is read: a backend with its queue full, or with a wait
no one-row request could meet, refuses without the body being parsed.

Fair shares (``client_share`` < 1): while another principal holds or waits for slots, a principal
(the API key's name; the client's address when the API is open) that already holds that share of
the limit is refused with 429 instead of being queued. One principal alone may use everything.

``stalled()`` tells a stalled backend (calls in flight, none completing) from a saturated one, for
``auto``'s choice to move requests to the other backend.

The fast path (capacity free and nobody waiting) is a few float operations; waiting is a future in
a FIFO, handed capacity by the call that frees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass, field

from gateway.app.core.errors import APIError
from gateway.app.limiter import Clock, GradientLimit

# A request is queued only if it expects to start within this share of its wait: queue waits vary
# (a slow call, the event loop's own work), and the margin keeps refusals by timeout, which cost the
# whole deadline, rare.
EXPECTED_WAIT_SHARE = 0.5
# Retry-After (whole seconds, HTTP's unit) is the expected drain of what is queued and in flight,
# at least this and at most MAX_RETRY_AFTER_S.
MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 30
# Stalled, not saturated: calls are in flight and none has completed for this many round trips (and
# at least MIN_STALL_S). A saturated backend still completes calls at its own pace; one that stopped
# (a GC pause, SIGSTOP, a deadlock) completes none, and its callers wait for their timeouts. `auto`
# moves a stalled backend's requests to the other one instead of refusing them.
STALL_RTTS = 20
MIN_STALL_S = 0.25


class Shed(APIError):
    """A request refused before it reached the backend; ``reason`` labels the metric."""

    def __init__(self, status: int, type_: str, reason: str, message: str, retry_after_s: float = MIN_RETRY_AFTER_S):
        super().__init__(status, type_, message)
        self.reason = reason
        if status != 504:
            seconds = min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, math.ceil(retry_after_s)))
            self.headers = {"Retry-After": str(seconds)}


def overloaded(backend: str, reason: str, detail: str, retry_after_s: float = MIN_RETRY_AFTER_S) -> Shed:
    return Shed(503, "overloaded", reason, f"{backend} is at capacity: {detail}; retry later", retry_after_s)


def deadline_exceeded(detail: str) -> Shed:
    return Shed(504, "deadline_exceeded", "deadline", f"the request's deadline {detail}")


@dataclass(eq=False)
class _Waiter:
    cost: float
    principal: str
    future: asyncio.Future[None] = field(repr=False)


class Admission:
    def __init__(
        self,
        backend: str,
        limit: GradientLimit,
        queue_rows: float,
        queue_timeout_s: float,
        client_share: float = 1.0,
        clock: Clock = time.monotonic,
    ):
        self.backend, self.limiter, self.queue_rows, self.queue_timeout_s = backend, limit, queue_rows, queue_timeout_s
        self.clock = clock
        self.inflight = 0.0  # rows
        self.calls = 0  # calls in flight
        self.waiting_rows = 0.0
        self._waiters: deque[_Waiter] = deque()
        self.client_share = client_share
        self._held: dict[str, float] = {}  # rows per principal, kept only when shares are enforced
        self._shares = client_share < 1
        self.busy_since = -math.inf  # clock time the calls in flight went from none to some

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def limit(self) -> float:
        return self.limiter.current(self.inflight)

    def expected_wait(self, rows_ahead: float) -> float:
        """Seconds until ``rows_ahead`` more rows have started (nan while the RTT is unknown)."""
        return rows_ahead * self.limiter.rtt() / self.limiter.current(self.inflight)

    def retry_after(self) -> float:
        """The expected drain of everything queued and in flight, in seconds (for Retry-After)."""
        wait = self.expected_wait(self.waiting_rows + self.inflight)
        return wait if math.isfinite(wait) else MIN_RETRY_AFTER_S

    def _fits(self, cost: float) -> bool:
        return self.inflight == 0 or self.inflight + cost <= self.limiter.current(self.inflight)

    def precheck(self, principal: str = "") -> None:
        """Before the body is read (its rows unknown, so one): refuse what acquire would surely refuse."""
        if not self._waiters and self._fits(1):
            return
        self._check_queue(1, principal, self.queue_timeout_s, None)

    async def acquire(self, cost: float = 1, principal: str = "", deadline: float | None = None) -> None:
        """Admit ``cost`` rows, waiting at most the queue deadline (or until ``deadline``, clock time)."""
        if not self._waiters and self._fits(cost):
            self._take(cost, principal)
            return
        wait = self.queue_timeout_s
        if deadline is not None:
            wait = min(wait, deadline - self.clock())
            if wait <= 0:
                raise deadline_exceeded("passed before a slot was free")
        self._check_queue(cost, principal, wait, deadline)
        waiter = _Waiter(cost, principal, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self.waiting_rows += cost
        try:
            async with asyncio.timeout(wait):
                await waiter.future
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():  # handed capacity as the timer fired
                self.release(cost, principal)
            if deadline is not None and wait < self.queue_timeout_s:
                raise deadline_exceeded("passed while waiting for a slot") from None
            raise overloaded(
                self.backend, "queue_timeout", f"no slot free within {self.queue_timeout_s * 1e3:g} ms",
                self.retry_after(),
            ) from None  # fmt: skip
        except BaseException:  # the client went away: capacity handed over must not leak
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(cost, principal)
            raise
        finally:
            if not waiter.future.done():
                waiter.future.cancel()
            with contextlib.suppress(ValueError):  # already popped by release()
                self._waiters.remove(waiter)
                self.waiting_rows -= cost

    def _check_queue(self, cost: float, principal: str, wait: float, deadline: float | None) -> None:
        """Refuse now what could not start in time, or would go past the queue or a fair share."""
        if self._shares and self._over_share(principal):
            raise Shed(
                429, "over_share", "client_share",
                f"this client holds {self._held.get(principal, 0):g} of {self.backend}'s "
                f"{self.limiter.limit:.0f} rows in flight, its share ({self.client_share:.0%}) while others "
                "wait; retry later", self.retry_after(),
            )  # fmt: skip
        if self.waiting_rows + cost > self.queue_rows:
            raise overloaded(
                self.backend, "queue_full",
                f"{self.inflight:g} rows in flight (limit {self.limiter.limit:.0f}) and {self.waiting_rows:g} waiting",
                self.retry_after(),
            )  # fmt: skip
        expected = self.expected_wait(self.waiting_rows + cost)
        if expected > wait * EXPECTED_WAIT_SHARE:  # False while the RTT is unknown (nan)
            if deadline is not None and wait < self.queue_timeout_s:
                raise deadline_exceeded(f"would pass before a slot is free (expected wait {expected * 1e3:.1f} ms)")
            raise overloaded(
                self.backend, "queue_full",
                f"{self.inflight:g} rows in flight (limit {self.limiter.limit:.0f}) and {self.waiting_rows:g} "
                f"waiting, a slot expected in {expected * 1e3:.1f} ms (> half the "
                f"{self.queue_timeout_s * 1e3:g} ms queue deadline)",
                self.retry_after(),
            )  # fmt: skip

    def _over_share(self, principal: str) -> bool:
        """Holds its share already while another principal holds or waits (only under contention)."""
        held = self._held.get(principal, 0.0)
        if held < self.client_share * self.limiter.limit:
            return False
        others = len(self._held) - (principal in self._held)
        return others > 0 or any(w.principal != principal for w in self._waiters)

    def stalled(self) -> bool:
        """Calls in flight and none completed for STALL_RTTS round trips (at least MIN_STALL_S)."""
        if self.calls == 0:
            return False
        rtt = self.limiter.rtt()
        quiet = self.clock() - max(self.limiter.last_sample_at, self.busy_since)
        return quiet > max(MIN_STALL_S, STALL_RTTS * rtt if math.isfinite(rtt) else 0.0)

    def _take(self, cost: float, principal: str) -> None:
        if self.calls == 0:
            self.busy_since = self.clock()
        self.inflight += cost
        self.calls += 1
        if self._shares:
            self._held[principal] = self._held.get(principal, 0.0) + cost

    def release(self, cost: float = 1, principal: str = "") -> None:
        """Free ``cost`` rows; hand capacity to the waiters at the head that now fit, in order."""
        self.inflight -= cost
        self.calls -= 1
        if self._shares:
            left = self._held.get(principal, 0.0) - cost
            if left > 1e-9:
                self._held[principal] = left
            else:
                self._held.pop(principal, None)
        while self._waiters:
            head = self._waiters[0]
            if head.future.done():  # timed out or cancelled: it removes itself; skip it
                self._waiters.popleft()
                self.waiting_rows -= head.cost
                continue
            if not self._fits(head.cost):
                return
            self._waiters.popleft()
            self.waiting_rows -= head.cost
            self._take(head.cost, head.principal)
            head.future.set_result(None)

    def observe(self, rtt_s: float, inflight_at_start: float) -> None:
        """One completed call, for the limit."""
        self.limiter.sample(rtt_s, inflight_at_start)

    def overload_answer(self) -> None:
        """The backend answered that it is full."""
        self.limiter.overloaded()
