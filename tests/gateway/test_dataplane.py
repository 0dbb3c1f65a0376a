"""The data plane's failure accounting with in-process fake clients (faults injected, no HTTP):
every outcome classified once, overload never retried nor a breaker failure, timeouts and unexpected
exceptions are failures, retries only when nothing reached the model and within the budget, one
budget per request passed on to each call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest

from gateway.app.admission import Shed
from gateway.app.clients.base import (
    BackendError,
    BackendOverloaded,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    Prediction,
    Status,
)
from gateway.app.core.config import Settings
from gateway.app.core.metrics import GatewayMetrics
from gateway.app.dataplane import Budget, DataPlane, Outcome, classify

T = TypeVar("T")
ROWS = np.zeros((1, 784), dtype=np.float32)


class FakeClient:
    """Answers by ``behave(call_number)``: a Prediction, or an exception to raise."""

    protocol = "rest"

    def __init__(self, name: str, behave: Callable[[int], Any]):
        self.name, self.address, self.behave = name, f"fake://{name}", behave
        self.calls = 0
        self.timeouts: list[float] = []

    async def predict(
        self, rows: np.ndarray, json_body: bytes | None = None, *, timeout: float, version: str | None = None
    ) -> Prediction:
        self.calls += 1
        self.timeouts.append(timeout)
        outcome = self.behave(self.calls)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, float):  # seconds to take, cut off at the timeout as the real clients do
            if outcome > timeout:
                await asyncio.sleep(timeout)
                raise BackendTimeout(self.name, "no answer within the timeout")
            await asyncio.sleep(outcome)
        return Prediction(np.full((len(rows), 10), 0.1, dtype=np.float32), "1")

    async def status(self) -> Status:
        return Status(True, "1")

    async def aclose(self) -> None:
        pass


def ok(_: int) -> None:
    return None


def plane(tf: Callable[[int], Any], ts: Callable[[int], Any] = ok, **settings: Any) -> DataPlane:
    clients = {"tfserving": FakeClient("tfserving", tf), "torchserve": FakeClient("torchserve", ts),
               "torchserve-onnx": FakeClient("torchserve-onnx", ok)}  # fmt: skip
    return DataPlane(Settings(**settings), clients, GatewayMetrics())  # type: ignore[arg-type]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def budget(ms: float = 2000, client: bool = True) -> Budget:
    return Budget(time.monotonic() + ms / 1e3, client)


def calls(dp: DataPlane, name: str) -> int:
    client = dp.clients[name]
    assert isinstance(client, FakeClient)
    return client.calls


async def attempt(
    dp: DataPlane, backend: str = "tfserving", ms: float = 2000, client: bool = False
) -> BaseException | None:
    try:
        await dp.infer(backend, ROWS, budget=budget(ms, client))
    except Exception as exc:
        return exc
    return None


def test_every_outcome_is_classified_once() -> None:
    assert [classify(e) for e in (
        None, BackendRejected("b", "x"), BackendOverloaded("b", "x"), BackendTimeout("b", "x"),
        BackendUnavailable("b", "x"), BackendError("b", "x"), KeyError("k"),
    )] == [Outcome.SUCCESS, Outcome.CLIENT_ERROR, Outcome.OVERLOAD, Outcome.TIMEOUT, Outcome.FAILURE,
           Outcome.FAILURE, Outcome.FAILURE]  # fmt: skip


def test_an_overloaded_backend_gets_exactly_one_call_per_request() -> None:
    """The old gateway retried a full queue's 503, counted it against the breaker and moved the load
    to the other server: up to 4 calls per request at the moment the backends were full."""

    async def main() -> None:
        dp = plane(lambda n: BackendOverloaded("tfserving", "HTTP 503: queue full"), breaker_failures=2)
        for i in range(1, 11):
            exc = await attempt(dp, "auto")
            assert isinstance(exc, BackendOverloaded) and exc.status == 503
            assert calls(dp, "tfserving") == i  # one call per request ...
        assert calls(dp, "torchserve") == 0 and calls(dp, "torchserve-onnx") == 0  # ... and no fallback
        assert dp.breakers["tfserving"].state == "closed"  # never a breaker failure
        assert dp.admissions["tfserving"].limiter.limit == 1  # it fed the limit: halved ten times, to the floor

    run(main())


def test_an_unexpected_exception_in_a_client_is_a_502_failure_that_opens_the_circuit() -> None:
    async def main() -> None:
        dp = plane(lambda n: KeyError("predictions"), breaker_failures=3)
        errors = [await attempt(dp) for _ in range(3)]
        assert all(isinstance(e, BackendError) and e.status == 502 for e in errors)
        assert "unexpected error in the gateway's tfserving client (KeyError)" in str(errors[0])
        assert dp.breakers["tfserving"].state == "open"
        exc = await attempt(dp)
        assert isinstance(exc, BackendUnavailable) and "circuit open" in str(exc) and calls(dp, "tfserving") == 3

    run(main())


def test_a_half_open_probe_ending_in_an_unexpected_exception_does_not_wedge_the_circuit() -> None:
    """The old breaker's probe flag stayed set forever after a probe raised anything but a
    BackendError: the backend was never called again."""

    async def main() -> None:
        state = {"mode": "fail"}

        def behave(_: int) -> Any:
            return KeyError("surprise") if state["mode"] == "fail" else None

        dp = plane(behave, breaker_failures=1, breaker_reset_s=0.05, breaker_max_reset_s=0.1)
        await attempt(dp)
        assert dp.breakers["tfserving"].state == "open"
        await asyncio.sleep(0.06)
        exc = await attempt(dp)  # the probe: raises KeyError inside the client
        assert isinstance(exc, BackendError) and dp.breakers["tfserving"].state == "open"
        assert not dp.breakers["tfserving"].probing
        state["mode"] = "ok"
        await asyncio.sleep(0.11)  # the doubled pause
        assert await attempt(dp) is None  # probed again, and closed
        assert dp.breakers["tfserving"].state == "closed"

    run(main())


def test_timeouts_count_against_the_backend_when_it_had_a_fair_chance() -> None:
    async def main() -> None:
        dp = plane(lambda n: 0.6, breaker_failures=3)  # takes 600 ms
        for _ in range(3):
            exc = await attempt(dp, ms=300)  # the gateway's own budget: always a fair chance
            assert isinstance(exc, BackendTimeout), exc
        assert dp.breakers["tfserving"].state == "open"

        dp = plane(lambda n: 0.6, breaker_failures=2)
        for _ in range(2):  # a client's budget long enough (> FAIR_TIMEOUT_S): fair too
            exc = await attempt(dp, ms=550, client=True)
            assert isinstance(exc, Shed) and exc.status == 504 and "passed while tfserving computed" in exc.message
        assert dp.breakers["tfserving"].state == "open"

        dp = plane(lambda n: 0.6, breaker_failures=1)
        exc = await attempt(dp, ms=20, client=True)  # a client's own 20 ms says nothing of the backend
        assert isinstance(exc, Shed) and exc.status == 504 and dp.breakers["tfserving"].state == "closed"

    run(main())


def test_only_what_never_reached_the_model_is_retried_and_only_within_the_budget() -> None:
    async def main() -> None:
        refused = BackendUnavailable("tfserving", "cannot reach 127.0.0.1:1 (connection refused)")
        dp = plane(lambda n: refused if n % 2 else None, breaker_failures=100)
        assert await attempt(dp) is None and calls(dp, "tfserving") == 2  # refused, retried, answered

        broke = BackendUnavailable("tfserving", "transport error: reset", sent=True)
        dp = plane(lambda n: broke, breaker_failures=100)
        await attempt(dp)
        assert calls(dp, "tfserving") == 1  # the request may have reached the model: not retried

        dp = plane(lambda n: refused, breaker_failures=100)
        per_request = []
        for _ in range(8):
            before = calls(dp, "tfserving")
            await attempt(dp)
            per_request.append(calls(dp, "tfserving") - before)
        # 10 tokens, one per failed call (9, 8; 7, 6; 5 ...); a retry only while more than 5 are left
        assert per_request == [2, 2, 1, 1, 1, 1, 1, 1]

    run(main())


def test_one_budget_per_request_reaches_every_call() -> None:
    async def main() -> None:
        dp = plane(ok)
        await dp.infer("tfserving", ROWS, budget=budget(300))
        client = dp.clients["tfserving"]
        assert isinstance(client, FakeClient)
        assert 0.29 < client.timeouts[-1] <= 0.3  # what was left of the 300 ms budget

        refused = BackendUnavailable("tfserving", "cannot reach (connection refused)")
        slow_refusal = {"n": 0}

        def behave(n: int) -> Any:
            slow_refusal["n"] = n
            return refused if n == 1 else None

        dp = plane(behave, breaker_failures=100)
        await dp.infer("tfserving", ROWS, budget=budget(1000))
        client = dp.clients["tfserving"]
        assert isinstance(client, FakeClient)
        assert client.timeouts[1] <= client.timeouts[0]  # the retry gets what is left, not a fresh budget

    run(main())


def test_what_cannot_finish_in_time_is_refused_before_it_is_sent() -> None:
    async def main() -> None:
        dp = plane(lambda n: 0.005)  # calls take 5 ms
        for _ in range(30):
            await dp.infer("tfserving", ROWS, budget=budget())
        await asyncio.sleep(0.11)
        for _ in range(11):
            await dp.infer("tfserving", ROWS, budget=budget())  # a window closes: the RTT is known
        sent = calls(dp, "tfserving")
        with pytest.raises(Shed) as info:
            await dp.infer("tfserving", ROWS, budget=budget(1))  # 1 ms left, calls take 5 ms
        assert info.value.status == 504 and "not sent" in info.value.message
        assert calls(dp, "tfserving") == sent

    run(main())


def test_auto_falls_back_after_a_failure_but_not_after_a_client_error() -> None:
    async def main() -> None:
        dp = plane(lambda n: BackendError("tfserving", "HTTP 500: boom"))
        result = await dp.infer("auto", ROWS, budget=budget())
        assert result.backend == "torchserve" and result.fallback_from == "tfserving"
        dp = plane(lambda n: BackendRejected("tfserving", "HTTP 400: bad"))
        exc = await attempt(dp, "auto")
        assert isinstance(exc, BackendRejected) and calls(dp, "torchserve") == 0

    run(main())


def test_auto_sends_past_a_stalled_backend_but_not_past_a_saturated_one() -> None:
    """A backend whose calls are in flight and none completes (SIGSTOPped, a GC pause) is skipped by
    auto: the other server answers at once instead of the request waiting for a timeout or being
    refused (the chaos run's stall: 872 of 26,884 failed before this). A slow backend that still
    completes calls keeps its requests."""

    async def main() -> None:
        dp = plane(lambda n: 30.0)  # TF Serving stops answering
        stuck = [asyncio.create_task(dp.infer("auto", ROWS, budget=budget(5000))) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert calls(dp, "tfserving") == 3 and not dp.admissions["tfserving"].stalled()
        await asyncio.sleep(0.3)  # > MIN_STALL_S with calls in flight and none completed
        assert dp.admissions["tfserving"].stalled()
        t0 = time.monotonic()
        result = await dp.infer("auto", ROWS, budget=budget(5000))
        assert result.backend == "torchserve" and result.fallback_from == "tfserving"
        assert time.monotonic() - t0 < 0.2 and calls(dp, "tfserving") == 3  # not sent to the stalled one
        assert calls(dp, "torchserve") == 1
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        # Slow but completing: 40 ms a call, each completion keeps it out of "stalled".
        dp = plane(lambda n: 0.04)
        slow = [asyncio.create_task(dp.infer("auto", ROWS, budget=budget(5000))) for _ in range(20)]
        for _ in range(6):
            await asyncio.sleep(0.05)
            assert not dp.admissions["tfserving"].stalled()
        results = await asyncio.gather(*slow)
        assert {r.backend for r in results} == {"tfserving"} and calls(dp, "torchserve") == 0

    run(main())
