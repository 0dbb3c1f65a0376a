"""What one generator process records, handed back as a ``contracts.Recording``.

Locust stores response times rounded to whole milliseconds under 100 ms (``bucket_response_time``),
so every local figure would read 1, 2 or 3 ms. Two fixes, both active when the locustfile loads:
- ``bucket_response_time`` is replaced by one keeping 3 significant digits (10 µs steps under 10 ms),
  so Locust's own CSV/HTML percentiles stay meaningful;
- every request's exact time is recorded here (warm-up excluded) and written at the end of the run.

Open-loop users also record, per request, its global sequence number, intended send time, the
latency from that time, the send lag and the server's batch size; a request sent but never answered
has no completion, and analysis counts it as failed.

Where: a single process (``LocalRunner``) writes ``<spec.out>.<host>.<pid>.json``. A worker
(``--processes``, compose, Kubernetes) ships its new rows to the master with each stats report, and
the master writes one file per worker when it quits (so workers need no shared volume), and can
judge stability over all workers' rows while the run goes on.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import locust.runners
import locust.stats
import numpy as np
from locust import events
from locust.env import Environment

from load_tests import stats
from load_tests.contracts import DONE_FIELDS, SENT_FIELDS, Recording, RunSpec

SIGNIFICANT_DIGITS = 3
# Workers report to the master this often (Locust's default is 3 s): the master's early stop
# judges windows of ≥ 2 s, so it must see rows soon after a window ends.
locust.runners.WORKER_REPORT_INTERVAL = 1.0
REPORT_KEY = "exact_timings"
SPEC = RunSpec.from_env()


def bucket(response_time: float) -> float:
    if response_time <= 0:
        return 0.0
    return float(f"{response_time:.{SIGNIFICANT_DIGITS}g}")


locust.stats.bucket_response_time = bucket  # type: ignore[assignment]

_rec = Recording(spec=SPEC, warmup_s=SPEC.warmup_s, cpu_jiffy_s=1 / os.sysconf("SC_CLK_TCK"))
_started = time.monotonic()
_waiting: list[Callable[[], float]] = []  # the open-loop users' precise-wait clocks (seconds spent waiting)
_shipped: dict[str, int] = {}  # rows of each column already shipped to the master
_from_workers: dict[str, Recording] = {}  # on the master: worker client id -> what it shipped


def recording() -> Recording:
    return _rec


@events.test_start.add_listener
def _on_start(**_: Any) -> None:
    global _rec, _started
    _started = time.monotonic()
    origin = _rec.origin if _rec.origin is not None and not _rec.sent else None  # a master-set origin survives
    _rec = Recording(spec=SPEC, process=_rec.process, warmup_s=SPEC.warmup_s, cpu_jiffy_s=_rec.cpu_jiffy_s)
    _rec.origin = origin
    _shipped.clear()
    _from_workers.clear()


def add_waiting_clock(clock: Callable[[], float]) -> None:
    _waiting.append(clock)


def record_mark() -> None:
    """The generator's CPU so far, the machine's /proc/stat counters and the time spent waiting precisely."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    busy = idle = steal = 0.0
    with contextlib.suppress(OSError):
        f = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle, steal = f[3] + f[4], (f[7] if len(f) > 7 else 0.0)
        busy = sum(f[:8]) - idle - steal
    waiting = sum(c() for c in _waiting)
    _rec.marks.append([time.perf_counter(), r.ru_utime + r.ru_stime, busy, idle, steal, waiting])


def set_origin(origin: float, process: int) -> None:
    if _rec.origin is None:
        _rec.origin = origin
    _rec.process = process


def record_sent(name: str, seq: int, offset: float) -> None:
    s = _rec.sent.get(name)
    if s is None:
        s = _rec.sent[name] = {k: [] for k in SENT_FIELDS}
    s["seq"].append(seq)
    s["t"].append(offset)


def record_done(
    name: str, seq: int, offset: float, lag_ms: float, ms: float, *, ok: bool, batch: int = 0, code: int = 0,
    via: int = 0,
) -> None:  # fmt: skip
    d = _rec.done.get(name)
    if d is None:
        d = _rec.done[name] = {k: [] for k in DONE_FIELDS}
    for key, value in zip(DONE_FIELDS, (seq, offset, ms, lag_ms, float(ok), batch, code, via), strict=True):
        d[key].append(value)


def open_loop_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(intended offsets, latency ms (inf = unanswered), ok) over every name and, on a master, every
    worker: what the early stop judges."""
    recs = list(_from_workers.values()) or [_rec]
    tables = [stats.open_loop_table(s, r.done.get(name, {})) for r in recs for name, s in r.sent.items()]
    if not tables:
        return None
    t = stats.merge_tables(tables)
    return t["t"], t["ms"], t["ok"]


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Exception | None, **_: Any) -> None:
    if time.monotonic() - _started < SPEC.warmup_s:
        return
    if exception is not None:
        _rec.failures[name] = _rec.failures.get(name, 0) + 1
    else:
        _rec.samples_ms.setdefault(name, []).append(response_time)


@events.test_stop.add_listener
def _on_stop(environment: Environment | None = None, **_: Any) -> None:
    """A single process writes its own file (workers ship theirs; the master writes them)."""
    if SPEC.out and environment is not None and isinstance(environment.runner, locust.runners.LocalRunner):
        _rec.write(Path(f"{SPEC.out}.{socket.gethostname()}.{os.getpid()}.json"))


def _tail(columns: dict[str, list[float]], key: str) -> dict[str, list[float]]:
    start = _shipped.get(key, 0)
    return {k: v[start:] for k, v in columns.items()}


@events.report_to_master.add_listener
def _ship(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Worker: hand the rows since the last report to the master."""
    part: dict[str, Any] = {
        "process": _rec.process,
        "origin": _rec.origin,
        "samples_ms": dict(_rec.samples_ms),
        "failures": dict(_rec.failures),
        "sent": {n: _tail(c, f"sent:{n}") for n, c in _rec.sent.items()},
        "done": {n: _tail(c, f"done:{n}") for n, c in _rec.done.items()},
        "marks": _rec.marks[_shipped.get("marks", 0) :],
    }
    data[REPORT_KEY] = part
    for n, c in _rec.sent.items():
        _shipped[f"sent:{n}"] = len(c["seq"])
    for n, c in _rec.done.items():
        _shipped[f"done:{n}"] = len(c["seq"])
    _shipped["marks"] = len(_rec.marks)
    _rec.samples_ms.clear()  # the shipped dict keeps the lists; new samples start new ones
    _rec.failures.clear()


@events.worker_report.add_listener
def _collect(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Master: accumulate what a worker shipped, as that worker's Recording."""
    part = data.get(REPORT_KEY)
    if not part:
        return
    acc = _from_workers.get(client_id)
    if acc is None:
        acc = _from_workers[client_id] = Recording(
            spec=SPEC, process=part["process"], warmup_s=SPEC.warmup_s, cpu_jiffy_s=_rec.cpu_jiffy_s
        )
    acc.origin = part["origin"] if part["origin"] is not None else acc.origin
    acc.process = part["process"]
    for name, values in part["samples_ms"].items():
        acc.samples_ms.setdefault(name, []).extend(values)
    for name, count in part["failures"].items():
        acc.failures[name] = acc.failures.get(name, 0) + count
    for key, into in (("sent", acc.sent), ("done", acc.done)):
        fields = SENT_FIELDS if key == "sent" else DONE_FIELDS
        for name, cols in part[key].items():
            target = into.setdefault(name, {k: [] for k in fields})
            for k in fields:
                target[k].extend(cols[k])
    acc.marks.extend(part["marks"])


@events.quitting.add_listener
def _write_workers(environment: Environment, **_: Any) -> None:
    """Master: one file per worker, after the workers' final reports (quitting comes after them)."""
    if not SPEC.out:
        return
    runner = environment.runner
    for client_id, acc in _from_workers.items():
        index = runner.get_worker_index(client_id) if isinstance(runner, locust.runners.MasterRunner) else client_id
        acc.write(Path(f"{SPEC.out}.worker-{re.sub(r'[^A-Za-z0-9_-]', '_', str(index))}.json"))
