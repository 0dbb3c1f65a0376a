"""The adaptive limit (gateway/app/limiter.py) on a simulated clock, with exact traces."""

from __future__ import annotations

import math

import pytest

from gateway.app import limiter
from gateway.app.limiter import GradientLimit, LimitSettings
from tests.gateway.helpers import SimClock

W = limiter.WINDOW_S
N = limiter.MIN_WINDOW_SAMPLES
LONG_WEIGHT = 1 - math.exp(-W / limiter.LONG_WINDOW_S)


def window(lim: GradientLimit, clock: SimClock, rtt_s: float, inflight: float) -> float:
    """One sample window of N calls of ``rtt_s`` with ``inflight`` rows in flight; the limit after it."""
    for _ in range(N):
        lim.sample(rtt_s, inflight)
    clock.advance(W)
    lim.sample(rtt_s, inflight)  # the window closes on the first sample after WINDOW_S
    return lim.limit


def test_a_backend_without_queueing_lets_the_limit_grow_by_its_square_root() -> None:
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, max_limit=100), clock)
    trace = [round(window(lim, clock, 0.002, inflight=lim.limit), 4) for _ in range(3)]
    expected, limit = [], 32.0
    for _ in range(3):
        limit = limit * 0.8 + (limit + math.sqrt(limit)) * 0.2  # gradient 1: no queueing
        expected.append(round(limit, 4))
    assert trace == expected == [33.1314, 34.2826, 35.4536]
    assert lim.long_rtt == pytest.approx(0.002)


def test_queueing_in_the_backend_shrinks_the_limit_at_most_by_half_a_window() -> None:
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, max_limit=100), clock)
    window(lim, clock, 0.002, inflight=32)  # long-run RTT 2 ms
    before = lim.limit
    after = window(lim, clock, 0.010, inflight=32)  # calls now take 10 ms: work queues in the backend
    long = 0.002 + LONG_WEIGHT * (0.010 - 0.002)
    gradient = max(0.5, min(1.0, 1.5 * long / 0.010))
    assert gradient == 0.5  # clamped: one window at most halves the new estimate
    assert after == pytest.approx(before * 0.8 + (before * gradient + math.sqrt(before)) * 0.2)
    assert after < before


def test_a_queue_full_answer_halves_at_once_and_the_floor_holds() -> None:
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, min_limit=4, max_limit=100), clock)
    trace = []
    for _ in range(5):
        lim.overloaded()
        trace.append(lim.limit)
    assert trace == [16, 8, 4, 4, 4]


def test_the_limit_never_exceeds_what_the_servers_queue_holds() -> None:
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, max_limit=34), clock)
    for _ in range(10):
        window(lim, clock, 0.002, inflight=lim.limit)
    assert lim.limit == 34


def test_an_app_limited_backend_neither_grows_nor_stays_shrunk() -> None:
    """Using less than half the limit says nothing about a larger one (no growth); a shrunk limit
    returns towards its initial value with RECOVER_S as time constant."""
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, max_limit=100), clock)
    window(lim, clock, 0.002, inflight=2)
    assert lim.limit == 32  # app-limited: unchanged
    lim.overloaded()
    lim.overloaded()
    assert lim.limit == 8
    clock.advance(limiter.RECOVER_S)  # idle for one time constant
    assert lim.current(inflight_rows=0) == pytest.approx(32 - 24 * math.exp(-1))
    clock.advance(4 * limiter.RECOVER_S)
    assert lim.current(inflight_rows=0) == pytest.approx(32 - 24 * math.exp(-5))


def test_a_busy_backend_does_not_recover_between_windows() -> None:
    """While its rows in flight are at the limit (a stall: nothing completes), the limit waits for
    evidence instead of relaxing upwards into the stalled backend."""
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, max_limit=100), clock)
    lim.overloaded()
    clock.advance(10.0)
    assert lim.current(inflight_rows=16) == 16


def test_after_a_stall_the_limit_and_the_rtt_return_within_seconds() -> None:
    """A 3 s stall: its calls return with 3 s round trips, the limit shrinks and the long-run RTT
    jumps; calls at 2 ms then bring both back: the limit to its initial value, the RTT the
    admission queue predicts from back to ~2 ms. Trace of (seconds after the stall, limit, rtt ms)."""
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, max_limit=100), clock)
    for _ in range(20):  # 2 s at 2 ms, app-limited
        window(lim, clock, 0.002, inflight=4)
    assert lim.limit == 32
    window(lim, clock, 3.0, inflight=32)  # the stalled calls complete
    assert lim.limit < 32 and lim.rtt() > 1.0
    trace = []
    for step in range(1, 31):  # then 3 s of normal calls, app-limited
        window(lim, clock, 0.002, inflight=4)
        if step % 10 == 0:
            trace.append((round(step * W, 1), round(lim.limit, 1), round(lim.rtt() * 1e3, 1)))
    seconds, limits, rtts = zip(*trace, strict=True)
    assert seconds == (1.0, 2.0, 3.0)
    assert limits[-1] > 0.75 * 32 and list(limits) == sorted(limits)  # climbing back, most of the way in 3 s
    assert rtts[-1] < 10.0 and list(rtts) == sorted(rtts, reverse=True)  # the stall's RTT forgotten


def test_the_rtt_to_expect_forgets_an_old_window() -> None:
    clock = SimClock()
    lim = GradientLimit(LimitSettings(initial=32, max_limit=100), clock)
    assert math.isnan(lim.rtt())  # nothing is predicted before the first window
    window(lim, clock, 0.002, inflight=32)
    window(lim, clock, 0.100, inflight=32)  # a slow window ...
    fresh = lim.rtt()
    assert fresh == pytest.approx(0.100)
    clock.advance(limiter.STALE_S)  # ... one time constant with no call completed
    w = math.exp(-1)
    assert lim.noload_rtt == pytest.approx(0.002 * (1 + LONG_WEIGHT))  # rises by ~1 %, not to 100 ms
    assert lim.rtt() == pytest.approx(0.100**w * lim.noload_rtt ** (1 - w))
    clock.advance(4 * limiter.STALE_S)
    assert lim.rtt() < 1.05 * lim.noload_rtt
    window(lim, clock, 0.001, inflight=32)
    assert lim.noload_rtt == pytest.approx(0.001)  # falls at once
