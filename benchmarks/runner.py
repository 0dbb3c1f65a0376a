"""Closed-loop load: N concurrent clients, each sends its next request when the last one answers."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

import httpx
import numpy as np

from benchmarks.targets import Target
from load_tests.generator import checks

WARMUP_S = 2.0  # excluded from the figures: connection set-up, first batches, JIT paths


@dataclass
class Result:
    target: str
    concurrency: int
    latencies_us: np.ndarray
    failures: int
    seconds: float
    sent: int = 0  # every request, warm-up included

    @property
    def rps(self) -> float:
        return len(self.latencies_us) / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_us, q)) if len(self.latencies_us) else float("nan")


async def _run(target: Target, concurrency: int, duration: float, max_requests: int) -> Result:
    headers = {"Content-Type": target.content_type}
    latencies: list[float] = []
    failures = 0
    sent = 0
    measuring = False
    stop_at = time.perf_counter() + WARMUP_S

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures, sent
        while time.perf_counter() < stop_at and len(latencies) < max_requests:
            t0 = time.perf_counter()
            try:
                r = await client.post(target.url, content=target.body, headers=headers)
                ok = r.status_code == 200 and checks.problem(r.content) is None
            except httpx.HTTPError:
                ok = False
            elapsed = time.perf_counter() - t0
            sent += 1
            if measuring:
                if ok:
                    latencies.append(elapsed * 1e6)
                else:
                    failures += 1

    # One client (one keep-alive connection) per user: a shared pool's lock skews high concurrency.
    clients = [httpx.AsyncClient(timeout=10, transport=nodelay_transport()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(worker(c) for c in clients))  # warm-up
        measuring = True
        start = time.perf_counter()
        stop_at = start + duration
        await asyncio.gather(*(worker(c) for c in clients))
        seconds = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return Result(target.name, concurrency, np.asarray(latencies), failures, seconds, sent)


def nodelay_transport() -> httpx.AsyncHTTPTransport:
    """Small request bodies leave in one segment instead of waiting on a delayed ACK."""
    return httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


def run(target: Target, concurrency: int, duration: float, max_requests: int = 1_000_000) -> Result:
    return asyncio.run(_run(target, concurrency, duration, max_requests))


def table(results: list[Result]) -> str:
    lines = [
        f"{'target':<28}{'users':>6}{'req/s':>10}{'p50 µs':>10}{'p90 µs':>10}{'p99 µs':>10}{'fail':>6}",
    ]
    for r in results:
        lines.append(
            f"{r.target:<28}{r.concurrency:>6}{r.rps:>10.0f}{r.pct(50):>10.0f}{r.pct(90):>10.0f}"
            f"{r.pct(99):>10.0f}{r.failures:>6}"
        )
    return "\n".join(lines)
