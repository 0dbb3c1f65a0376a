"""The measurement rules, as pure functions on samples: windows and stability, capacity search at an
SLO, confidence intervals and the load generator's validity flags. Nothing here does I/O, so each
rule is unit-tested on synthetic inputs (tests/load_tests/test_stats.py).

Definitions, the same for every target:
- latency is measured from the request's *intended* send time on the Poisson schedule (so a stalled
  generator or server cannot hide queueing: no coordinated omission); a request that never completed
  counts as infinitely slow;
- a point *passes* the SLO when its p99 over the measured windows is within ``slo_ms`` and nothing failed;
- QPS@SLO is the highest offered Poisson rate that passes, bracketed by a failing rate at most
  ``tolerance`` above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Tuning constants (perf_analyzer's stability criterion; MLPerf-style p99 at a Poisson rate).
STABLE_WINDOWS = 3  # this many consecutive windows must agree ...
STABLE_TOLERANCE = 0.10  # ... within ±10 % of their mean, on throughput and on p99
MIN_STEP_SAMPLES = 2000  # per measured point: the p99 then rests on ≥ 20 samples above it ...
MAX_WINDOW_S = 8.0  # ... unless the rate is so low that windows would exceed this (then fewer samples)
CAPACITY_TOLERANCE = 0.05  # bisection stops when the failing rate is within 5 % of the passing one
# The generator guard (docs: load_tests/README.md): a point is the server's figure only if the load
# generator neither moved it nor ran out of CPU, and the machine had CPU left.
MAX_GENERATOR_CPU_SHARE = 0.70  # of one core, per generator process: its whole CPU, waits included
MIN_MACHINE_IDLE = 0.05  # share of the whole machine idle over the measured windows ("no idle left" below)
MAX_LAG_IMPACT_SHARE_OF_SLO = 0.05  # p99 − p99 without the send lag, as a share of the SLO
# The reasons' first words, by rule (reports count invalid points by these).
GUARD_RULES = ("generator CPU", "machine idle", "send lag")


def percentile_ms(latencies_ms: np.ndarray, q: float) -> float:
    """Percentile by the nearest-rank-above rule (``inf`` entries are requests that never completed)."""
    if len(latencies_ms) == 0:
        return math.nan
    return float(np.percentile(latencies_ms, q, method="higher"))


@dataclass(frozen=True)
class Window:
    start_s: float  # intended-time offset of the window's start
    seconds: float
    completed: int  # successful answers to requests intended in this window
    failed: int  # errors, wrong answers and requests never answered
    p99_ms: float

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds


def split_windows(
    intended_s: np.ndarray, latency_ms: np.ndarray, ok: np.ndarray, warmup_s: float, window_s: float
) -> list[Window]:
    """Requests grouped by intended send time into whole windows after the warm-up (a trailing
    partial window is dropped). ``latency_ms`` is ``inf`` for a request that never completed."""
    if len(intended_s) == 0:
        return []
    n = int((float(intended_s.max()) - warmup_s) // window_s)
    out = []
    for k in range(max(n, 0)):
        lo = warmup_s + k * window_s
        sel = (intended_s >= lo) & (intended_s < lo + window_s)
        lat = np.where(ok[sel], latency_ms[sel], np.inf)
        out.append(Window(lo, window_s, int(ok[sel].sum()), int((~ok[sel]).sum()), percentile_ms(lat, 99)))
    return out


def _agree(values: Sequence[float], tolerance: float) -> bool:
    if any(not math.isfinite(v) for v in values):
        return False
    mean = sum(values) / len(values)
    return mean > 0 and all(abs(v - mean) <= tolerance * mean for v in values)


def stable(windows: Sequence[Window], count: int = STABLE_WINDOWS, tolerance: float = STABLE_TOLERANCE) -> bool:
    """The last ``count`` windows agree within ±``tolerance`` of their mean on throughput and on p99."""
    if len(windows) < count:
        return False
    last = windows[-count:]
    return _agree([w.throughput for w in last], tolerance) and _agree([w.p99_ms for w in last], tolerance)


def window_seconds(rate: float, min_window_s: float, min_samples: int = MIN_STEP_SAMPLES) -> float:
    """Long enough that the STABLE_WINDOWS measured windows together hold ``min_samples`` requests
    (capped at MAX_WINDOW_S, which bounds a point's duration at very low rates)."""
    return max(min_window_s, min(MAX_WINDOW_S, min_samples / STABLE_WINDOWS / rate))


@dataclass
class RunResult:
    """One closed-loop run (runs/matrix.py): exact latencies and failures of one target at one user level."""

    target: str
    users: int
    samples_ms: np.ndarray
    failures: int
    seconds: float
    server_breakdown: dict[str, Any] | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.samples_ms) / self.seconds if self.seconds else 0.0

    def pct_us(self, q: float) -> float:
        return float(np.percentile(self.samples_ms, q) * 1000) if len(self.samples_ms) else float("nan")


@dataclass
class Point:
    """One measured offered rate."""

    rate: float
    p50_ms: float
    p99_ms: float
    throughput: float
    samples: int
    failed: int
    stable: bool
    windows: int
    invalid: list[str] = field(default_factory=list)  # generator-guard reasons; empty when valid
    extra: dict[str, Any] = field(default_factory=dict)

    def passes(self, slo_ms: float) -> bool:
        return self.failed == 0 and self.samples > 0 and self.p99_ms <= slo_ms

    @property
    def valid(self) -> bool:
        return not self.invalid


@dataclass
class Search:
    qps: float  # highest passing rate (0 when even the lowest rate failed)
    ceiling: float  # lowest failing rate found (inf when none failed up to max_rate)
    steps: list[Point]

    @property
    def at_qps(self) -> Point | None:
        return next((p for p in self.steps if p.rate == self.qps), None)

    @property
    def at_ceiling(self) -> Point | None:
        return next((p for p in self.steps if p.rate == self.ceiling), None)


def search_capacity(
    measure: Callable[[float], Point],
    slo_ms: float,
    start_rate: float,
    *,
    tolerance: float = CAPACITY_TOLERANCE,
    min_rate: float = 10.0,
    max_rate: float = 50_000.0,
    bracket: tuple[float, float] | None = None,
) -> Search:
    """QPS@SLO by exponential search then geometric bisection, to within ``tolerance``.

    ``bracket`` (lo, hi) from an earlier repeat saves the exponential phase; each end is measured
    and the bracket widened until lo passes and hi fails."""
    steps: list[Point] = []

    def ok(rate: float) -> bool:
        steps.append(measure(rate))
        return steps[-1].passes(slo_ms)

    def climb(rate: float) -> tuple[float, float]:
        """From a passing ``rate``: double (up to max_rate) until a rate fails -> (lo, hi)."""
        lo = rate
        while lo < max_rate:
            nxt = min(lo * 2, max_rate)
            if not ok(nxt):
                return lo, nxt
            lo = nxt
        return lo, math.inf

    def descend(rate: float) -> tuple[float, float]:
        """From a failing ``rate``: halve (down to min_rate) until a rate passes -> (lo, hi)."""
        hi = rate
        while hi / 2 >= min_rate:
            if ok(hi / 2):
                return hi / 2, hi
            hi /= 2
        return 0.0, hi

    if bracket:
        a, b = max(min_rate, bracket[0]), min(max_rate, bracket[1])
        if not ok(a):
            lo, hi = descend(a)
        elif a >= max_rate or not ok(b):
            lo, hi = (a, math.inf) if a >= max_rate else (a, b)
        else:
            lo, hi = climb(b)
    else:
        rate = min(max(start_rate, min_rate), max_rate)
        lo, hi = climb(rate) if ok(rate) else descend(rate)
    while lo > 0 and math.isfinite(hi) and hi > lo * (1 + tolerance):
        mid = math.sqrt(lo * hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return Search(lo, hi, steps)


def mean_ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and the two-sided 95 % Student-t interval of the mean (repeats are few)."""
    from scipy import stats as scipy_stats  # here: the Locust image imports this module without SciPy

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def lag_impact_ms(latency_ms: np.ndarray, lag_ms: np.ndarray) -> tuple[float, float]:
    """(how much the send lag moved the p99, the p99 without it). Latency counts from the intended
    send time, so it includes the lag; taking the lag out of every request gives the p99 the server
    would have shown had each request left on time. Unanswered requests stay infinitely slow."""
    lag = np.where(np.isfinite(lag_ms), np.maximum(lag_ms, 0.0), 0.0)
    with_lag = percentile_ms(latency_ms, 99)
    without = percentile_ms(latency_ms - lag, 99)
    if math.isinf(with_lag) and math.isinf(without):
        return 0.0, without  # more than 1 % never answered: the lag moved nothing
    return with_lag - without, without


def invalid_reasons(generator_cpu_share: float, machine_idle: float, lag_impact: float, slo_ms: float) -> list[str]:
    """Why a point's figure belongs to the load generator or a saturated machine, not the server:
    the busiest generator process's whole CPU (waits included) above MAX_GENERATOR_CPU_SHARE of a
    core, the machine below MIN_MACHINE_IDLE idle, or the send lag moving the p99 by more than
    MAX_LAG_IMPACT_SHARE_OF_SLO of the SLO. A figure that is unknown (nan) trips nothing."""
    reasons = []
    if generator_cpu_share > MAX_GENERATOR_CPU_SHARE:
        reasons.append(
            f"generator CPU {generator_cpu_share:.0%} of a core (> {MAX_GENERATOR_CPU_SHARE:.0%}, waits included)"
        )
    if machine_idle < MIN_MACHINE_IDLE:
        reasons.append(f"machine idle {machine_idle:.1%} (< {MIN_MACHINE_IDLE:.0%})")
    if lag_impact > MAX_LAG_IMPACT_SHARE_OF_SLO * slo_ms:
        reasons.append(
            f"send lag moved p99 by {lag_impact:.2f} ms (> {MAX_LAG_IMPACT_SHARE_OF_SLO:.0%} of the {slo_ms:g} ms SLO)"
        )
    return reasons


def guard_rule(reason: str) -> str:
    """Which rule a reason is (GUARD_RULES), for counting."""
    return next((r for r in GUARD_RULES if reason.startswith(r)), reason)


def open_loop_table(sent: dict[str, list[float]], done: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Per request sent (contracts.SENT_FIELDS columns): global sequence number, intended offset,
    latency (inf when unanswered), send lag, ok, batch, HTTP status, answering backend. ``done`` rows
    are matched by sequence number."""
    seq_sent = np.asarray(sent.get("seq", []), dtype=np.int64)
    n = len(seq_sent)
    out = {
        "seq": seq_sent,
        "t": np.asarray(sent.get("t", []), dtype=float),
        "ms": np.full(n, np.inf),
        "lag_ms": np.full(n, np.nan),
        "ok": np.zeros(n, dtype=bool),
        "batch": np.zeros(n, dtype=int),
        "code": np.zeros(n, dtype=int),  # recordings from before these columns read as 0
        "via": np.zeros(n, dtype=int),
    }
    if n and done and done["seq"]:
        order = np.argsort(seq_sent, kind="stable")
        seq = np.asarray(done["seq"], dtype=np.int64)
        pos = np.searchsorted(seq_sent, seq, sorter=order)
        pos = np.minimum(pos, n - 1)
        idx = order[pos]
        keep = seq_sent[idx] == seq  # a completion of an arrival this table never sent is ignored
        idx = idx[keep]
        out["ms"][idx] = np.asarray(done["ms"], dtype=float)[keep]
        out["lag_ms"][idx] = np.asarray(done["lag_ms"], dtype=float)[keep]
        out["ok"][idx] = np.asarray(done["ok"])[keep] > 0
        for column in ("batch", "code", "via"):
            if column in done:
                out[column][idx] = np.asarray(done[column])[keep]
    out["ms"][~out["ok"]] = np.inf
    return out


def merge_tables(tables: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Several processes' tables as one, in arrival order (processes split one schedule by sequence
    number, so together they are the whole schedule)."""
    keys = ("seq", "t", "ms", "lag_ms", "ok", "batch", "code", "via")
    if not tables:
        return {k: np.zeros(0) for k in keys}
    merged = {k: np.concatenate([t[k] for t in tables]) for k in keys}
    order = np.argsort(merged["seq"], kind="stable")
    return {k: v[order] for k, v in merged.items()}
