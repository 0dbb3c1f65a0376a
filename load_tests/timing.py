"""Sub-millisecond latency.

Locust stores response times rounded to whole milliseconds under 100 ms (``bucket_response_time``),
so every local figure would read 1, 2 or 3 ms. Two fixes, both active when the locustfile loads:
- ``bucket_response_time`` is replaced by one keeping 3 significant digits (10 µs steps under 10 ms),
  so Locust's own CSV/HTML percentiles stay meaningful;
- every request's exact time is recorded here (warm-up excluded) and written as JSON at the end of
  the run, from which the report computes p50 ... p99.9 to the microsecond.

Where workers share no volume with the master (Kubernetes Jobs), a worker started without
``LOAD_EXACT_OUT`` ships its new samples with each stats report, and the master writes one file per
worker when it quits.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import locust.stats
import orjson
from locust import events
from locust.env import Environment

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
# On the master: what each worker shipped, by Locust client id.
_from_workers: dict[str, dict[str, Any]] = {}
REPORT_KEY = "exact_timings"


@events.test_start.add_listener
def _on_start(**_: Any) -> None:
    global _started
    _started = time.monotonic()
    _samples.clear()
    _failures.clear()
    _from_workers.clear()


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Exception | None, **_: Any) -> None:
    if time.monotonic() - _started < WARMUP_S:
        return
    if exception is not None:
        _failures[name] = _failures.get(name, 0) + 1
    else:
        _samples.setdefault(name, []).append(response_time)


def _write(suffix: str, samples: dict[str, list[float]], failures: dict[str, int]) -> None:
    out = Path(f"{EXACT_OUT}.{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"warmup_s": WARMUP_S, "samples_ms": samples, "failures": failures}))


@events.test_stop.add_listener
def _on_stop(**_: Any) -> None:
    if EXACT_OUT:
        _write(f"{socket.gethostname()}.{os.getpid()}", _samples, _failures)


@events.report_to_master.add_listener
def _ship(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Worker: hand the samples since the last report to the master (unless it writes its own file)."""
    if EXACT_OUT or not (_samples or _failures):
        return
    data[REPORT_KEY] = {"samples_ms": dict(_samples), "failures": dict(_failures)}
    _samples.clear()  # the shipped dicts keep the lists; new samples start new ones
    _failures.clear()


@events.worker_report.add_listener
def _collect(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Master: accumulate what a worker shipped."""
    part = data.get(REPORT_KEY)
    if not part:
        return
    acc = _from_workers.setdefault(client_id, {"samples_ms": {}, "failures": {}})
    for name, values in part["samples_ms"].items():
        acc["samples_ms"].setdefault(name, []).extend(values)
    for name, count in part["failures"].items():
        acc["failures"][name] = acc["failures"].get(name, 0) + count


@events.quitting.add_listener
def _write_workers(environment: Environment, **_: Any) -> None:
    """Master: one file per worker, after the workers' final reports (quitting comes after them)."""
    if not EXACT_OUT:
        return
    for client_id, acc in _from_workers.items():
        _write(f"worker-{re.sub(r'[^A-Za-z0-9_-]', '_', client_id)}", acc["samples_ms"], acc["failures"])
