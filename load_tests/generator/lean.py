"""A lean open-loop generator for rates Locust cannot reach on a small machine: asyncio on uvloop,
keep-alive HTTP/1.1 connections with answers parsed by httptools, requests prebuilt as bytes,
Poisson arrivals timed from their intended send time (a request waiting for a free connection waits
in its latency). It costs a few tens of µs a request (Locust ~400 µs), recorded per run with its send
lag: uvloop's timers fire on whole milliseconds, so an arrival leaves up to ~1 ms late, and that is
counted in its latency.

``make bench-overload`` (benchmarks/overload.py) offers 3x the gateway's capacity with it, and
``make load-rollout`` (load_tests/runs/rollout.py) keeps a steady rate through model rollouts.
Every request is one ``Sample``; ``classify`` turns an answer's status and body into a short tag
(the refusal's error type, the ``model_version`` that answered) so no body is kept.
"""

from __future__ import annotations

import asyncio
import math
import random
import resource
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httptools

# Tuning constants.
CONNECTIONS = 512  # keep-alive connections: enough that requests wait at the server, not for a socket
START_LEAD_S = 0.05  # the schedule starts this long after the call (connections, the first timer)

Classify = Callable[[int, bytes], str]


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self._answer(0)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._answer(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._answer(0)

    def _answer(self, status: int) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, b"".join(self.body)))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.body = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


@dataclass(slots=True)
class Sample:
    offset_s: float  # intended send time, seconds after the run's origin
    lag_ms: float  # how late it left (after its connection was found)
    latency_ms: float  # from the intended send time to the whole answer
    status: int  # 0: no HTTP answer (connection refused or closed)
    request: int  # index into the requests the run was given
    tag: str  # what ``classify`` made of the answer
    recorded: bool  # False during the warm-up


@dataclass
class LeanRun:
    rate: float
    origin_wall: float  # Unix time of offset 0, to line samples up with other records
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = math.nan  # from the first send to the last answer
    generator_cpu_us_per_req: float = math.nan  # this process's CPU (user + system) per request sent

    def recorded(self) -> list[Sample]:
        return [s for s in self.samples if s.recorded]


def http_request(path: str, port: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A keep-alive POST as the bytes sent on the wire."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    *,
    seconds: float | None = None,
    stop: asyncio.Event | None = None,
    warmup_s: float = 0.0,
    seed: int = 0,
    classify: Classify | None = None,
) -> LeanRun:
    """Poisson arrivals at ``rate``, cycling through ``requests``, for ``warmup_s`` (unrecorded) plus
    ``seconds``, or until ``stop`` is set; then every answer is awaited."""
    if seconds is None and stop is None:
        raise ValueError("give seconds or a stop event")
    loop = asyncio.get_running_loop()
    idle: deque[_Conn] = deque()
    waiting: deque[asyncio.Future[None]] = deque()
    conns = 0
    origin = time.perf_counter() + START_LEAD_S
    run = LeanRun(rate, time.time() + START_LEAD_S)

    async def connection() -> _Conn:
        nonlocal conns
        while idle:
            c = idle.pop()
            if not c.closed:
                return c
        if conns < CONNECTIONS:
            conns += 1
            try:
                _, c = await loop.create_connection(_Conn, host, port)
            except OSError:
                conns -= 1
                raise
            return c
        turn = loop.create_future()
        waiting.append(turn)
        await turn
        return await connection()

    def give_back(c: _Conn) -> None:
        nonlocal conns
        if c.closed:
            conns -= 1
        else:
            idle.append(c)
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return

    async def one(offset: float, index: int) -> None:
        intended = origin + offset
        lag_ms = math.nan
        try:
            c = await connection()
        except OSError:
            status, body = 0, b""
        else:
            lag_ms = (time.perf_counter() - intended) * 1e3
            try:
                status, body = await c.send(requests[index])
            finally:
                give_back(c)
        latency_ms = (time.perf_counter() - intended) * 1e3
        tag = classify(status, body) if classify is not None else ""
        run.samples.append(Sample(offset, lag_ms, latency_ms, status, index, tag, offset >= warmup_s))

    rng = random.Random(seed)
    offset = rng.expovariate(rate)
    end = math.inf if seconds is None else warmup_s + seconds
    tasks: set[asyncio.Task[None]] = set()
    cpu0, sent = own_cpu_s(), 0
    while offset < end and not (stop is not None and stop.is_set()):
        delay = origin + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(one(offset, sent % len(requests)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        offset += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    run.wall_s = time.perf_counter() - origin
    run.generator_cpu_us_per_req = (own_cpu_s() - cpu0) / max(1, sent) * 1e6
    for c in idle:
        if c.transport is not None:
            c.transport.close()
    run.samples.sort(key=lambda s: s.offset_s)
    return run
