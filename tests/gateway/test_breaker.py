"""The circuit breaker (gateway/app/breaker.py) on a simulated clock, with exact state traces."""

from __future__ import annotations

from gateway.app.breaker import CircuitBreaker
from tests.gateway.helpers import SimClock


def breaker(clock: SimClock, **kw: float) -> CircuitBreaker:
    return CircuitBreaker(failures=3, reset_s=5.0, max_reset_s=20.0, probe_timeout_s=2.0, clock=clock, **kw)


def test_consecutive_failures_open_and_one_probe_closes() -> None:
    clock = SimClock()
    b = breaker(clock)
    trace = []
    for event in ("failure", "success", "failure", "failure", "failure"):
        getattr(b, event)()
        trace.append(b.state)
    assert trace == ["closed", "closed", "closed", "closed", "open"]  # a success resets the count
    assert not b.allow() and b.retry_after() == 5.0
    clock.advance(5.0)
    assert b.state == "half-open"
    assert b.allow() and b.probing  # exactly one probe ...
    assert [b.allow() for _ in range(3)] == [False, False, False]  # ... the rest fail fast
    b.success()
    assert (b.state, b.probing, b.allow()) == ("closed", False, True)


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_maximum() -> None:
    clock = SimClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    pauses = []
    for _ in range(4):
        clock.advance(b.pause_s)
        assert b.allow()
        b.failure(probe=True)
        pauses.append(b.pause_s)
        assert b.state == "open"
    assert pauses == [10.0, 20.0, 20.0, 20.0]
    clock.advance(20.0)
    assert b.allow()
    b.success()
    assert b.pause_s == 5.0  # a success starts over from reset_s


def test_a_probe_that_never_reports_cannot_wedge_the_circuit() -> None:
    """The old breaker: a probe ending in an exception nobody classified left it half-open forever
    and the backend was never called again. Here the probe's lease runs out: it counts as failed."""
    clock = SimClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.advance(5.0)
    assert b.allow()  # the probe goes out ... and its caller vanishes without a word
    clock.advance(1.9)
    assert not b.allow()  # lease still running
    clock.advance(0.1)
    assert not b.allow()  # lease over: the probe failed, re-opened for 10 s
    assert (b.state, b.probing, b.pause_s) == ("open", False, 10.0)
    clock.advance(10.0)
    assert b.allow()  # and a new probe goes out


def test_a_probe_refused_before_the_call_is_handed_back() -> None:
    clock = SimClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.advance(5.0)
    assert b.allow()
    b.release_probe()  # admission refused it: no verdict
    assert b.state == "half-open" and b.allow()  # the next request probes


def test_a_call_admitted_before_the_circuit_opened_does_not_fail_the_probe() -> None:
    clock = SimClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.advance(5.0)
    assert b.allow()  # the probe is out
    b.failure()  # a late failure of an older call
    assert b.probing and b.state == "half-open"
    b.success()  # the probe's answer
    assert b.state == "closed"


def test_a_backend_ready_again_is_probed_at_once() -> None:
    clock = SimClock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.advance(1.0)
    b.probe_now()
    assert b.state == "half-open" and b.allow()


def test_a_circuit_closed_again_is_on_probation_for_its_reset_time() -> None:
    clock = SimClock()
    b = breaker(clock)
    assert b.proven
    for _ in range(3):
        b.failure()
    assert b.state == "open" and not b.proven
    clock.advance(5.0)
    assert b.allow()
    b.success()
    assert b.state == "closed" and not b.proven  # just back
    clock.advance(5.0)
    assert b.proven
