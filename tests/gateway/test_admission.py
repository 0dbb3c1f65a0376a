"""Admission control on its own: slots, the bounded queue, its deadline, client deadlines, shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from gateway.app.admission import EXPECTED_WAIT_SHARE, MIN_CALLS_OBSERVED, Admission, Shed
from gateway.app.core.config import Settings
from mnist_serving.spec import MAX_EXECUTION_BATCH
from tests.deploy.conftest import render
from tests.deploy.test_kubernetes import SERVERS, _kind, _pods

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_slots_are_handed_over_in_order() -> None:
    async def main() -> list[int]:
        adm = Admission("b", limit=1, queue=4, queue_timeout_s=1.0)
        await adm.acquire()
        order: list[int] = []

        async def waiter(i: int) -> None:
            await adm.acquire()
            order.append(i)
            adm.release()

        tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert adm.waiting == 3 and adm.inflight == 1
        adm.release()
        await asyncio.gather(*tasks)
        assert adm.inflight == 0 and adm.waiting == 0
        return order

    assert run(main()) == [0, 1, 2]


def test_a_full_queue_refuses_at_once_with_retry_after() -> None:
    async def main() -> None:
        adm = Admission("tfserving", limit=1, queue=1, queue_timeout_s=5.0)
        await adm.acquire()
        queued = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        with pytest.raises(Shed) as info:
            await adm.acquire()
        assert time.perf_counter() - start < 0.005
        shed = info.value
        assert (shed.status, shed.type, shed.reason) == (503, "overloaded", "queue_full")
        assert shed.headers == {"Retry-After": "1"} and "tfserving is at capacity" in shed.message
        adm.release()
        await queued
        adm.release()
        assert adm.inflight == 0

    run(main())


def test_the_queue_deadline_bounds_the_wait() -> None:
    async def main() -> None:
        adm = Admission("b", limit=1, queue=10, queue_timeout_s=0.05)
        await adm.acquire()
        start = time.perf_counter()
        with pytest.raises(Shed) as info:
            await adm.acquire()
        waited = time.perf_counter() - start
        assert 0.04 < waited < 0.2 and info.value.reason == "queue_timeout" and info.value.status == 503
        assert adm.waiting == 0
        adm.release()
        assert adm.inflight == 0

    run(main())


def test_a_client_deadline_shorter_than_the_queue_is_504() -> None:
    async def main() -> None:
        adm = Admission("b", limit=1, queue=10, queue_timeout_s=5.0)
        await adm.acquire()
        with pytest.raises(Shed) as info:
            await adm.acquire(deadline=time.monotonic() + 0.02)
        assert info.value.status == 504 and info.value.type == "deadline_exceeded" and not info.value.headers
        with pytest.raises(Shed) as info:  # already passed: not even queued
            await adm.acquire(deadline=time.monotonic() - 1)
        assert info.value.status == 504 and adm.waiting == 0

    run(main())


def test_a_cancelled_waiter_leaks_no_slot() -> None:
    async def main() -> None:
        adm = Admission("b", limit=1, queue=10, queue_timeout_s=5.0)
        await adm.acquire()
        gone = asyncio.create_task(adm.acquire())
        kept = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0.01)
        gone.cancel()  # the client went away while waiting
        await asyncio.sleep(0)
        adm.release()
        await kept
        adm.release()
        assert adm.inflight == 0 and adm.waiting == 0

    run(main())


def test_one_client_over_its_share_gets_429_only_under_contention() -> None:
    async def main() -> None:
        adm = Admission("b", limit=2, queue=2, queue_timeout_s=1.0, client_share=0.5)  # 2 of 4 slots each
        await adm.acquire("greedy")
        await adm.acquire("greedy")  # idle otherwise: it may take both
        waiting = asyncio.create_task(adm.acquire("polite"))
        await asyncio.sleep(0.01)
        with pytest.raises(Shed) as info:
            await adm.acquire("greedy")
        assert (info.value.status, info.value.type, info.value.reason) == (429, "over_share", "client_share")
        assert info.value.headers == {"Retry-After": "1"}
        adm.release("greedy")
        await waiting
        adm.release("polite")
        adm.release("greedy")
        assert adm.inflight == 0

    run(main())


def test_a_request_that_cannot_start_in_time_is_refused_at_once() -> None:
    async def main() -> None:
        adm = Admission("b", limit=2, queue=100, queue_timeout_s=0.05)
        for _ in range(MIN_CALLS_OBSERVED):
            adm.observe(0.02)  # calls take 20 ms: with 2 slots one starts every 10 ms
        await adm.acquire()
        await adm.acquire()
        queued = [asyncio.create_task(adm.acquire()) for _ in range(2)]  # 2nd expects 20 ms: in time
        await asyncio.sleep(0.001)
        assert adm.waiting == 2
        start = time.perf_counter()
        with pytest.raises(Shed) as info:
            await adm.acquire()  # 3rd: 30 ms > half the 50 ms deadline
        assert time.perf_counter() - start < 0.005
        assert info.value.status == 503 and info.value.reason == "queue_full"
        assert "expected in 30.0 ms" in str(info.value)
        with pytest.raises(Shed) as info:  # a client deadline of 40 ms cannot be met either: 504 at once
            await adm.acquire(deadline=time.monotonic() + 0.04)
        assert info.value.status == 504
        for _ in range(4):
            adm.release()
            await asyncio.sleep(0)
        await asyncio.gather(*queued)
        assert adm.inflight == 0 and adm.waiting == 0

    run(main())


@pytest.mark.parametrize("name", ["cpu", "gpu", "gpu-operator", "cpu-prometheus"])
def test_the_gateways_limit_and_the_servers_hpas_agree(name: str) -> None:
    """At the smallest scale, the gateways together admit at most one full execution batch per
    server pod (more would queue inside the server, where no one refuses it), and the servers' HPAs
    scale out on a signal that fires long before the gateway refuses anything."""
    objs = render(name)
    hpas = _kind(objs, "HorizontalPodAutoscaler")
    (gateway,) = (c for c in _pods(objs)["gateway"]["containers"] if c["name"] == "gateway")
    env = {e["name"]: e.get("value") for e in gateway.get("env", [])}
    settings = Settings(**{k.removeprefix("GATEWAY_").lower(): v for k, v in env.items()
                           if k in ("GATEWAY_ADMISSION_LIMIT", "GATEWAY_QUEUE_TIMEOUT_MS")})  # fmt: skip
    gateways = hpas["gateway"]["spec"]["minReplicas"]
    for server in SERVERS:
        spec = hpas[server]["spec"]
        assert settings.admission_limit * gateways / spec["minReplicas"] <= MAX_EXECUTION_BATCH, server
        (metric,) = spec["metrics"]
        if metric["type"] == "Resource":  # CPU: scales out below saturation, where the gateway refuses
            assert metric["resource"]["target"]["averageUtilization"] < 100
        else:  # the server's own queue wait, in µs: far below the wait at which the gateway refuses
            target_us = float(str(metric["pods"]["target"]["averageValue"]).replace("k", "e3"))
            assert target_us < settings.queue_timeout_ms * 1e3 * EXPECTED_WAIT_SHARE / 10, server


def test_a_circuit_closed_again_is_on_probation_for_its_reset_time() -> None:
    from gateway.app.breaker import CircuitBreaker

    breaker = CircuitBreaker(failures=1, reset_s=0.1)
    assert breaker.proven
    breaker.failure()
    assert breaker.state == "open" and not breaker.proven
    time.sleep(0.11)
    assert breaker.allow()  # the probe
    breaker.success()
    assert breaker.state == "closed" and not breaker.proven  # just back
    time.sleep(0.11)
    assert breaker.proven


def test_nothing_is_predicted_from_the_first_cold_calls() -> None:
    async def main() -> None:
        adm = Admission("b", limit=1, queue=10, queue_timeout_s=0.2)
        adm.observe(0.5)  # one cold first call
        await adm.acquire()
        waiter = asyncio.create_task(adm.acquire())  # queued, not refused from one sample
        await asyncio.sleep(0.01)
        assert adm.waiting == 1
        adm.release()
        await waiter
        adm.release()

    run(main())
