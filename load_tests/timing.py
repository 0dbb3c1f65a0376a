"""Sub-millisecond latency.

Locust stores response times rounded to whole milliseconds under 100 ms (``bucket_response_time``),
so every local figure would read 1, 2 or 3 ms. Two fixes, both active when the locustfile loads:
- ``bucket_response_time`` is replaced by one keeping 3 significant digits (10 µs steps under 10 ms),
  so Locust's own CSV/HTML percentiles stay meaningful;
- every request's exact time is recorded here (warm-up excluded) and written as JSON at the end of
  the run, from which the report computes p50 ... p99.9 to the microsecond.

Open-loop users (openloop.py) also record, per request, its intended send time (seconds from the
schedule's start), the latency from that time, the send lag and the server's batch size; a request
sent but never answered stays in ``sent`` with no completion, and analysis counts it as failed.

Where workers share no volume with the master (Kubernetes Jobs), a worker started without
``LOAD_EXACT_OUT`` ships its new samples with each stats report, and the master writes one file per
worker when it quits.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import time
from pathlib import Path
from typing import Any

import locust.stats
import numpy as np
import orjson
from locust import events
from locust.env import Environment

from load_tests import stats

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
# Open loop, per request name: intended offsets of every request sent (index = sequence number),
# and one entry per completion.
_sent: dict[str, list[float]] = {}
_done: dict[str, dict[str, list[float]]] = {}
_origin: list[float] = []  # perf_counter of the schedule's start, once an open-loop user runs
_failures: dict[str, int] = {}
_started = time.monotonic()
# On the master: what each worker shipped, by Locust client id.
_from_workers: dict[str, dict[str, Any]] = {}
REPORT_KEY = "exact_timings"
_shipped_sent: dict[str, int] = {}


@events.test_start.add_listener
def _on_start(**_: Any) -> None:
    global _started
    _started = time.monotonic()
    _samples.clear()
    _failures.clear()
    _from_workers.clear()
    _sent.clear()
    _done.clear()
    _origin.clear()
    _shipped_sent.clear()
    _marks.clear()


_marks: list[list[float]] = []  # [perf_counter, own CPU s, machine busy, idle, steal (jiffies)]


def record_mark() -> None:
    """The generator's CPU so far and the machine's /proc/stat counters, at this moment."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu = Path("/proc/stat")
    busy = idle = steal = 0.0
    with contextlib.suppress(OSError):
        f = [float(v) for v in cpu.read_text().split("\n", 1)[0].split()[1:]]
        idle, steal = f[3] + f[4], (f[7] if len(f) > 7 else 0.0)
        busy = sum(f[:8]) - idle - steal
    _marks.append([time.perf_counter(), r.ru_utime + r.ru_stime, busy, idle, steal])


def open_loop_started(origin: float) -> None:
    if not _origin:
        _origin.append(origin)


def record_sent(name: str, offset: float) -> None:
    _sent.setdefault(name, []).append(offset)


DONE_FIELDS = ("seq", "t", "ms", "lag_ms", "ok", "batch")


def record_done(name: str, seq: int, offset: float, lag_ms: float, ms: float, *, ok: bool, batch: int = 0) -> None:
    d = _done.setdefault(name, {k: [] for k in DONE_FIELDS})
    for key, value in zip(DONE_FIELDS, (seq, offset, ms, lag_ms, float(ok), batch), strict=True):
        d[key].append(value)


def open_loop_arrays() -> tuple[float, np.ndarray, np.ndarray, np.ndarray] | None:
    """(origin, intended offsets, latency ms (inf = unanswered), ok) over every name, in this process."""
    if not _origin or not _sent:
        return None
    t, ms, ok = [], [], []
    for name, sent in _sent.items():
        a = stats.open_loop_table(sent, _done.get(name, {}))
        t.append(a["t"])
        ms.append(a["ms"])
        ok.append(a["ok"])
    return _origin[0], np.concatenate(t), np.concatenate(ms), np.concatenate(ok)


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Exception | None, **_: Any) -> None:
    if time.monotonic() - _started < WARMUP_S:
        return
    if exception is not None:
        _failures[name] = _failures.get(name, 0) + 1
    else:
        _samples.setdefault(name, []).append(response_time)


def _write(
    suffix: str,
    samples: dict[str, list[float]],
    failures: dict[str, int],
    sent: dict[str, list[float]],
    done: dict[str, dict[str, list[float]]],
) -> None:
    out = Path(f"{EXACT_OUT}.{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "warmup_s": WARMUP_S,
        "samples_ms": samples,
        "failures": failures,
        "sent": sent,
        "done": done,
        "origin": _origin[0] if _origin else None,
        "marks": _marks,
        "cpu_jiffy_s": 1 / os.sysconf("SC_CLK_TCK"),
    }
    out.write_bytes(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))


@events.test_stop.add_listener
def _on_stop(**_: Any) -> None:
    if EXACT_OUT:
        _write(f"{socket.gethostname()}.{os.getpid()}", _samples, _failures, _sent, _done)


@events.report_to_master.add_listener
def _ship(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Worker: hand the samples since the last report to the master (unless it writes its own file)."""
    if EXACT_OUT or not (_samples or _failures or _sent):
        return
    data[REPORT_KEY] = {
        "samples_ms": dict(_samples),
        "failures": dict(_failures),
        "sent": {k: v[_shipped_sent.get(k, 0) :] for k, v in _sent.items()},
        "done": dict(_done),
    }
    for k, v in _sent.items():  # sequence numbers index the whole list: ship only the new tail
        _shipped_sent[k] = len(v)
    _samples.clear()  # the shipped dicts keep the lists; new samples start new ones
    _failures.clear()
    _done.clear()


@events.worker_report.add_listener
def _collect(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Master: accumulate what a worker shipped."""
    part = data.get(REPORT_KEY)
    if not part:
        return
    acc = _from_workers.setdefault(client_id, {"samples_ms": {}, "failures": {}, "sent": {}, "done": {}})
    for name, values in part["samples_ms"].items():
        acc["samples_ms"].setdefault(name, []).extend(values)
    for name, count in part["failures"].items():
        acc["failures"][name] = acc["failures"].get(name, 0) + count
    for name, offsets in part.get("sent", {}).items():
        acc["sent"].setdefault(name, []).extend(offsets)
    for name, fields in part.get("done", {}).items():
        into = acc["done"].setdefault(name, {k: [] for k in DONE_FIELDS})
        for k in DONE_FIELDS:
            into[k].extend(fields[k])


@events.quitting.add_listener
def _write_workers(environment: Environment, **_: Any) -> None:
    """Master: one file per worker, after the workers' final reports (quitting comes after them)."""
    if not EXACT_OUT:
        return
    for client_id, acc in _from_workers.items():
        suffix = f"worker-{re.sub(r'[^A-Za-z0-9_-]', '_', client_id)}"
        _write(suffix, acc["samples_ms"], acc["failures"], acc["sent"], acc["done"])
