"""Admission control on its own: rows under the adaptive limit, the bounded queue, its deadline,
client deadlines, fair shares by principal, the checks before the body is read. The limit's clock is
simulated; waits are real (tens of milliseconds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from gateway.app import limiter
from gateway.app.admission import EXPECTED_WAIT_SHARE, Admission, Shed
from gateway.app.core.config import Settings
from gateway.app.limiter import GradientLimit, LimitSettings
from mnist_serving.spec import MAX_EXECUTION_BATCH
from tests.deploy.conftest import render
from tests.deploy.test_kubernetes import SERVERS, _kind, _pods
from tests.gateway.helpers import SimClock

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def admission(
    limit: float = 32, queue: float = 256, timeout_s: float = 1.0, share: float = 1.0, clock: SimClock | None = None
) -> Admission:
    clock = clock or SimClock()
    lim = GradientLimit(LimitSettings(initial=limit, min_limit=1, max_limit=4 * limit), clock)
    return Admission("tfserving", lim, queue, timeout_s, share, clock=clock)


def learn_rtt(adm: Admission, clock: SimClock, rtt_s: float) -> None:
    """One sample window at ``rtt_s`` (app-limited: the limit stays as it is)."""
    for _ in range(limiter.MIN_WINDOW_SAMPLES):
        adm.observe(rtt_s, 0)
    clock.advance(limiter.WINDOW_S)
    adm.observe(rtt_s, 0)


def test_a_requests_cost_is_its_rows() -> None:
    """32 requests of 256 rows are not admitted as 32 rows: with a 32-row limit one big request runs
    (alone: a request larger than the whole limit still runs), and the next waits."""

    async def main() -> None:
        adm = admission(limit=32, queue=1024)
        await adm.acquire(256)  # alone: admitted although larger than the limit
        assert (adm.inflight, adm.calls) == (256, 1)
        second = asyncio.create_task(adm.acquire(256))
        small = asyncio.create_task(adm.acquire(1))
        await asyncio.sleep(0.01)
        assert adm.waiting == 2 and adm.waiting_rows == 257  # FIFO: the small one waits behind it
        adm.release(256)
        await second
        assert adm.inflight == 256 and adm.waiting == 1
        adm.release(256)
        await small
        assert adm.inflight == 1
        adm.release(1)
        assert (adm.inflight, adm.calls, adm.waiting) == (0, 0, 0)

    run(main())


def test_slots_are_handed_over_in_order() -> None:
    async def main() -> list[int]:
        adm = admission(limit=1, queue=4)
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


def test_a_full_queue_refuses_at_once_with_retry_after_from_the_drain() -> None:
    async def main() -> None:
        clock = SimClock()
        adm = admission(limit=2, queue=2, timeout_s=5.0, clock=clock)
        learn_rtt(adm, clock, 1.5)  # calls take 1.5 s: 2 in flight + 2 queued drain in 3 s
        await adm.acquire()
        await adm.acquire()
        queued = asyncio.create_task(adm.acquire(2))
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        with pytest.raises(Shed) as info:
            await adm.acquire()
        assert time.perf_counter() - start < 0.005
        shed = info.value
        assert (shed.status, shed.type, shed.reason) == (503, "overloaded", "queue_full")
        assert shed.headers == {"Retry-After": "3"} and "tfserving is at capacity" in shed.message
        adm.release()
        adm.release()
        await queued
        adm.release(2)
        assert adm.inflight == 0

    run(main())


def test_the_queue_deadline_bounds_the_wait() -> None:
    async def main() -> None:
        adm = admission(limit=1, queue=10, timeout_s=0.05)
        await adm.acquire()
        start = time.perf_counter()
        with pytest.raises(Shed) as info:
            await adm.acquire()
        waited = time.perf_counter() - start
        assert 0.04 < waited < 0.2 and info.value.reason == "queue_timeout" and info.value.status == 503
        assert adm.waiting == 0 and adm.waiting_rows == 0
        adm.release()
        assert adm.inflight == 0

    run(main())


def test_a_client_deadline_shorter_than_the_queue_is_504() -> None:
    async def main() -> None:
        adm = admission(limit=1, queue=10, timeout_s=5.0)
        await adm.acquire()
        with pytest.raises(Shed) as info:
            await adm.acquire(deadline=adm.clock() + 0.02)
        assert info.value.status == 504 and info.value.type == "deadline_exceeded" and not info.value.headers
        with pytest.raises(Shed) as info:  # already passed: not even queued
            await adm.acquire(deadline=adm.clock() - 1)
        assert info.value.status == 504 and adm.waiting == 0

    run(main())


def test_a_cancelled_waiter_leaks_no_slot() -> None:
    async def main() -> None:
        adm = admission(limit=1, queue=10, timeout_s=5.0)
        await adm.acquire()
        gone = asyncio.create_task(adm.acquire())
        kept = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0.01)
        gone.cancel()  # the client went away while waiting
        await asyncio.sleep(0)
        adm.release()
        await kept
        adm.release()
        assert adm.inflight == 0 and adm.waiting == 0 and adm.waiting_rows == 0

    run(main())


def test_a_request_that_cannot_start_in_time_is_refused_at_once() -> None:
    """Little's law over the limit: with calls of 20 ms and 2 rows in flight, a row starts every 10 ms."""

    async def main() -> None:
        clock = SimClock()
        adm = admission(limit=2, queue=100, timeout_s=0.05, clock=clock)
        learn_rtt(adm, clock, 0.02)
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
            await adm.acquire(deadline=clock() + 0.04)
        assert info.value.status == 504
        for _ in range(4):
            adm.release()
            await asyncio.sleep(0)
        await asyncio.gather(*queued)
        assert adm.inflight == 0 and adm.waiting == 0

    run(main())


def test_a_stall_long_past_does_not_refuse_a_burst() -> None:
    """The latch of the old admission: the wait per queue place learned during a stall never decayed,
    so a burst after recovery was refused whole (1,000 of 1,000). Now the expected wait comes from
    the RTT, which forgets the stall as it ages, so the burst is admitted up to what the limit can
    start within the queue deadline, as before the stall (within 10 %: what is left of the stall's
    RTT after 10 s, e^-10 x 3 s, and the unloaded RTT's 1 % rise)."""

    async def refused_at_once(adm: Admission, n: int) -> int:
        tasks = [asyncio.create_task(adm.acquire()) for _ in range(n)]
        await asyncio.sleep(0)  # each ran up to its first wait: admitted, queued or refused
        refused = sum(1 for t in tasks if t.done() and isinstance(t.exception(), Shed))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return refused

    def backend(stall: bool) -> Admission:
        clock = SimClock()
        adm = admission(limit=32, queue=10_000, timeout_s=0.1, clock=clock)
        for _ in range(10):
            learn_rtt(adm, clock, 0.003)
        if stall:
            learn_rtt(adm, clock, 3.0)  # the stall's calls come back after 3 s
            clock.advance(10.0)  # and then nothing for 10 s
        return adm

    before = run(refused_at_once(backend(stall=False), 1000))
    after = run(refused_at_once(backend(stall=True), 1000))
    # 32 admitted; a row starts every 3/32 ms, so ~530 can start within half the 100 ms deadline
    assert 400 < before < 500 and abs(after - before) <= 0.1 * before, (before, after)


def test_precheck_refuses_before_the_body_is_read() -> None:
    async def main() -> None:
        adm = admission(limit=1, queue=1, timeout_s=5.0)
        adm.precheck()  # free: passes
        await adm.acquire()
        adm.precheck()  # the queue has room for one row
        waiting = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0.01)
        with pytest.raises(Shed) as info:
            adm.precheck()
        assert info.value.reason == "queue_full"
        adm.release()
        await waiting
        adm.release()

    run(main())


def test_a_principal_over_its_share_gets_429_only_while_others_compete() -> None:
    async def main() -> None:
        adm = admission(limit=4, queue=8, timeout_s=1.0, share=0.5)  # 2 of 4 rows each while others wait
        for _ in range(4):
            await adm.acquire(1, "key:greedy")  # alone: it may take everything
        waiting = asyncio.create_task(adm.acquire(1, "key:polite"))
        await asyncio.sleep(0.01)
        with pytest.raises(Shed) as info:
            await adm.acquire(1, "key:greedy")
        assert (info.value.status, info.value.type, info.value.reason) == (429, "over_share", "client_share")
        assert info.value.headers == {"Retry-After": "1"}
        adm.release(1, "key:greedy")
        await waiting
        adm.release(1, "key:polite")
        for _ in range(3):
            adm.release(1, "key:greedy")
        assert adm.inflight == 0 and not adm._held

    run(main())


def test_the_default_share_is_in_force() -> None:
    """Fair shares were inert at the defaults (a share of 144 slots while 32 could ever be held)."""
    s = Settings()
    assert s.client_share < 1 and s.client_share * s.admission_limit < s.admission_limit


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


def test_stalled_means_calls_in_flight_and_none_completing() -> None:
    """Exact trace on a simulated clock: stalled once calls are in flight and none has completed for
    MIN_STALL_S (20 round trips of 3 ms are less); a completion or an idle backend ends it; a
    saturated backend that still completes calls never is."""
    from gateway.app.admission import MIN_STALL_S

    async def main() -> None:
        clock = SimClock()
        adm = admission(clock=clock)
        learn_rtt(adm, clock, 0.003)
        trace = [adm.stalled()]  # idle
        clock.advance(5.0)
        await adm.acquire(1)  # busy from now: the quiet counts from here, not from the last sample
        trace.append(adm.stalled())
        clock.advance(MIN_STALL_S - 0.01)
        trace.append(adm.stalled())
        clock.advance(0.02)
        trace.append(adm.stalled())  # 0.26 s with a call in flight and nothing completed
        adm.observe(0.26, 1)  # it completes
        trace.append(adm.stalled())
        clock.advance(MIN_STALL_S + 0.01)
        trace.append(adm.stalled())  # still one in flight, silent again
        adm.release(1)
        trace.append(adm.stalled())  # idle is not stalled
        assert trace == [False, False, False, True, False, True, False]
        # Saturated: every slot busy and requests queued, but calls complete every 10 ms.
        for _ in range(32):
            await adm.acquire(1)
        for _ in range(100):
            clock.advance(0.01)
            adm.observe(0.05, 32)
            assert not adm.stalled()

    run(main())
