"""The lean open-loop generator against a real local server (load_tests/servers/trivial.py, in this
event loop): every arrival sent and answered, latency from the intended send time, the warm-up kept
apart, a refused connection recorded as status 0 rather than raised, and the stop event honoured."""

from __future__ import annotations

import asyncio

import pytest

from load_tests.generator import lean
from load_tests.servers import trivial
from serving.native.process import free_ports


async def _with_server(body):
    port = free_ports(1)[0]
    server = await asyncio.get_running_loop().create_server(trivial._Answer, "127.0.0.1", port)
    async with server:
        return await body(port)


def test_every_arrival_is_answered_and_timed_from_its_intended_send() -> None:
    async def body(port: int) -> lean.LeanRun:
        request = lean.http_request("/v1/predict", port, b'{"instances": [[0]]}')
        return await lean.open_loop(
            "127.0.0.1", port, [request, request], 200.0, seconds=1.0, warmup_s=0.25, seed=3,
            classify=lambda status, _: str(status),
        )  # fmt: skip

    run = asyncio.run(_with_server(body))
    recorded = run.recorded()
    # Poisson at 200/s over 1.25 s: ~250 arrivals (a 5-sigma band), ~50 of them in the warm-up.
    assert 250 - 5 * 250**0.5 < len(run.samples) < 250 + 5 * 250**0.5
    assert 0 < len(run.samples) - len(recorded) < 100
    assert all(s.status == 200 and s.tag == "200" for s in run.samples)
    assert {s.request for s in run.samples} == {0, 1}
    assert all(s.latency_ms >= s.lag_ms >= 0 for s in run.samples)
    assert all(s.offset_s >= 0.25 for s in recorded)
    assert run.generator_cpu_us_per_req > 0


def test_a_refused_connection_is_status_0_and_stop_ends_the_run() -> None:
    async def body() -> lean.LeanRun:
        port = free_ports(1)[0]  # nothing listens
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        return await lean.open_loop("127.0.0.1", port, [b"x"], 100.0, stop=stop, seed=1)

    run = asyncio.run(body())
    assert run.samples and all(s.status == 0 for s in run.samples)
    assert max(s.offset_s for s in run.samples) < 0.35


def test_a_run_needs_an_end() -> None:
    with pytest.raises(ValueError, match="seconds or a stop event"):
        asyncio.run(lean.open_loop("127.0.0.1", 1, [b"x"], 1.0))
