"""Sub-millisecond latency.

Locust stores response times rounded to whole milliseconds under 100 ms (``bucket_response_time``),
so every local figure would read 1, 2 or 3 ms. Two fixes, both active when the locustfile loads:
- ``bucket_response_time`` is replaced by one keeping 3 significant digits (10 µs steps under 10 ms),
  so Locust's own CSV/HTML percentiles stay meaningful;
- every request's exact time is recorded here (warm-up excluded) and written as JSON at the end of
  the run, from which the report computes p50 ... p99.9 to the microsecond.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import locust.stats
import orjson
from locust import events

SIGNIFICANT_DIGITS = 3
# Requests in the first WARMUP_S seconds of a run do not count (connections, first batches).
WARMUP_S = float(os.environ.get("LOAD_WARMUP_S", "0"))
# Where to write the exact timings: one file per process, <prefix>.<host>.<pid>.json, so that the
# master and every worker (each PID 1 in its own container) keep their own.
EXACT_OUT = os.environ.get("LOAD_EXACT_OUT")


def bucket(response_time: float) -> float:
    if response_time <= 0:
        return 0.0
    return float(f"{response_time:.{SIGNIFICANT_DIGITS}g}")


locust.stats.bucket_response_time = bucket  # type: ignore[assignment]

_samples: dict[str, list[float]] = {}
_failures: dict[str, int] = {}
_started = time.monotonic()


@events.test_start.add_listener
def _on_start(**_: Any) -> None:
    global _started
    _started = time.monotonic()
    _samples.clear()
    _failures.clear()


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Exception | None, **_: Any) -> None:
    if time.monotonic() - _started < WARMUP_S:
        return
    if exception is not None:
        _failures[name] = _failures.get(name, 0) + 1
    else:
        _samples.setdefault(name, []).append(response_time)


@events.test_stop.add_listener
def _on_stop(**_: Any) -> None:
    if not EXACT_OUT:
        return
    out = Path(f"{EXACT_OUT}.{socket.gethostname()}.{os.getpid()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"warmup_s": WARMUP_S, "samples_ms": _samples, "failures": _failures}))
