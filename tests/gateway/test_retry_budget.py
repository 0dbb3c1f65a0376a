"""The retry budget (gateway/app/retry.py): gRPC's retry throttling, as an exact token trace."""

from __future__ import annotations

import pytest

from gateway.app.retry import RetryBudget


def test_failures_spend_the_bucket_and_successes_refill_it_slowly() -> None:
    b = RetryBudget(max_tokens=10, token_ratio=0.1)
    trace = []
    for _ in range(6):
        b.failure()
        trace.append((b.tokens, b.allows_retry()))
    assert trace == [(9, True), (8, True), (7, True), (6, True), (5, False), (4, False)]
    for _ in range(10):
        b.success()
    assert b.tokens == pytest.approx(5.0) and not b.allows_retry()  # strictly more than half is needed
    b.success()
    assert b.tokens == pytest.approx(5.1) and b.allows_retry()


def test_retries_go_on_below_a_nine_percent_failure_rate_and_stop_above_it() -> None:
    """The bucket holds while failures x 1 <= successes x 0.1: a failure share under 1/11 (~9 %)."""
    b = RetryBudget()
    for i in range(1000):  # one in twenty fails
        b.failure() if i % 20 == 0 else b.success()
    assert b.allows_retry()
    b2 = RetryBudget()
    for i in range(1000):  # one in five fails: the bucket drains, retries stop
        b2.failure() if i % 5 == 0 else b2.success()
    assert not b2.allows_retry()
