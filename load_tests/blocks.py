"""The block design of a capacity run, as pure functions of the points so far (the runner,
runs/capacity.py, measures; this decides what to measure next and what the points say).

- A *block* visits every target (servers and floors alike) at several rates, in an order shuffled
  per block (seeded), all with the block's seed: the same Poisson arrivals for every target of a
  block, so a server and its floor are paired within it.
- Block 0 finds each target's knee coarsely: from the fixed rate, doubling until a point fails the
  SLO (or halving until one passes), then geometric midpoints until the bracket is within
  ``COARSE``. It runs in rounds (every target still searching takes its next rate each round, in a
  shuffled order).
- Every later block visits each target at the fixed rate (the p50/p99 ratios) and at
  ``knee_steps`` × its current QPS@SLO estimate (fitted on all its valid points so far), each step
  jittered by up to ±``JITTER`` so the blocks cover the curve instead of repeating it. A target
  whose knee is not bracketed yet keeps climbing (or descending).
- After each block everything is refitted; the run stops once every direct target's interval
  half-width is within the target share, or the time budget ends (runs/capacity.py).

``summarise`` turns all the points into each target's result (QPS@SLO with its block-bootstrap
interval, the fit, the bracket, the guard's count, the ratios to its floor) and the servers'
comparison.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from load_tests import estimate, results, stats
from load_tests.targets import Target

# Tuning constants (runs/capacity.py exposes them as options).
KNEE_STEPS = (0.75, 0.9, 1.0, 1.1)  # a block's rates around each target's knee, × its estimate
JITTER = 0.04  # each step moves by up to ± this share, seeded per block and target
MIN_RATE = 10.0  # req/s: a descent stops here
COARSE = 1.15  # block 0 stops once its failing rate is within 15 % of its passing one
EXPLORE = 1.1  # a block also tries this far past a passing rate above all its planned ones
DIRECT = ("tfserving", "torchserve", "torchserve-onnx")  # the servers hit directly: the stopping rule's


def curve(points: Iterable[results.PointRecord], slo_ms: float) -> estimate.Curve:
    """A target's valid points as the estimator's curve (a p99 of null: infinitely slow)."""
    rows = [(p.rate, math.inf if p.p99_ms is None else p.p99_ms, p.failed, p.block) for p in points if p.valid]
    return estimate.Curve.of(rows)


def by_target(points: Sequence[results.PointRecord]) -> dict[str, list[results.PointRecord]]:
    out: dict[str, list[results.PointRecord]] = {}
    for p in points:
        out.setdefault(p.target, []).append(p)
    return out


def climb_next(points: Sequence[results.PointRecord], slo_ms: float, start: float, max_rate: float) -> float | None:
    """Block 0's next rate for one target, from its points so far (valid or not: a coarse search),
    or None once its knee is bracketed within ``COARSE``."""
    if not points:
        return start
    passing = sorted(p.rate for p in points if p.passes)
    failing = sorted(p.rate for p in points if not p.passes)
    if passing and failing:
        lo = max((r for r in passing if r < failing[0]), default=None)
        if lo is None:  # fails below every pass: the bracket is noise; measure between the lowest two
            return None
        return None if failing[0] / lo <= COARSE else math.sqrt(lo * failing[0])
    if not failing:
        top = passing[-1]
        return min(top * 2, max_rate) if top < max_rate else None
    low = failing[0]
    return low / 2 if low / 2 >= MIN_RATE else None


def knee_plan(
    points: Sequence[results.PointRecord],
    slo_ms: float,
    fixed_rate: float,
    max_rate: float,
    steps: Sequence[float],
    rng: random.Random,
) -> list[float]:
    """A later block's rates for one target: the fixed rate and the steps around its estimate (or,
    while its valid points do not give one, around the bracket of all its points, valid or not: a
    knee the guard hides, where the generator or the machine runs out, is not worth climbing past)."""
    fit = estimate.fit(curve(points, slo_ms), slo_ms)
    rates = [fixed_rate]
    passing = [p.rate for p in points if p.passes]
    failing = [p.rate for p in points if not p.passes]
    if fit.qps is not None:
        centre = fit.qps
    elif passing and failing and max(passing) < min(failing) * 1.5:
        centre = math.sqrt(max(passing) * min(failing))
    elif fit.highest_pass is not None and fit.lowest_fail is None:
        centre = min(fit.highest_pass * 2, max_rate)  # past everything that passed so far
    elif fit.lowest_fail is not None and fit.highest_pass is None:
        centre = max(fit.lowest_fail / 2, MIN_RATE)
    elif fit.highest_pass is not None and fit.lowest_fail is not None:
        centre = math.sqrt(fit.highest_pass * fit.lowest_fail)
    else:
        centre = fixed_rate * 2
    for s in steps:
        r = centre * s * (1 + rng.uniform(-JITTER, JITTER))
        rates.append(float(min(max(r, MIN_RATE), max_rate)))
    if passing and max(passing) > centre * max(steps) * 1.05:
        # Something passed above every planned rate: a noisy failure may have trapped the estimate
        # low. One rate past it lets the points say so.
        rates.append(float(min(max(passing) * EXPLORE, max_rate)))
    return sorted(set(round(r, 1) for r in rates))


def shuffled(visits: list[tuple[str, float]], seed: int) -> list[tuple[str, float]]:
    out = list(visits)
    random.Random(seed).shuffle(out)
    return out


@dataclass(frozen=True)
class Summary:
    targets: dict[str, results.TargetResult]
    comparisons: list[results.Comparison]


def summarise(
    targets: Sequence[Target],
    points: Sequence[results.PointRecord],
    slo_ms: float,
    fixed_rate: float,
    *,
    resamples: int = estimate.RESAMPLES,
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] = (("tfserving", "torchserve"), ("tfserving", "torchserve-onnx")),
) -> Summary:
    """Every target's result from all the points (valid ones only), the ratios to its floor paired
    within blocks, and the servers compared pairwise on the same blocks."""
    per = by_target(points)
    names = [t.name for t in targets]
    curves = {n: curve(per.get(n, []), slo_ms) for n in names}
    cache = estimate.FitCache(curves, slo_ms)
    out: dict[str, results.TargetResult] = {}
    qps: dict[str, estimate.Interval] = {}
    for t in targets:
        qps[t.name] = estimate.qps_interval(cache, t.name, resamples=resamples, seed=seed)
    for t in targets:
        pts = per.get(t.name, [])
        f = estimate.fit(curves[t.name], slo_ms)
        fixed = [p for p in pts if p.valid and math.isclose(p.rate, fixed_rate) and p.p50_ms is not None]
        ratios = None
        if t.floor and t.floor in curves:
            ratios = results.Ratios(
                floor=t.floor,
                rate=fixed_rate,
                p50=_estimate(_latency_ratio(per, t.name, t.floor, fixed_rate, "p50_ms", resamples, seed)),
                p99=_estimate(_latency_ratio(per, t.name, t.floor, fixed_rate, "p99_ms", resamples, seed)),
                qps_at_slo=_estimate(
                    estimate.qps_ratio_interval(cache, t.name, t.floor, resamples=resamples, seed=seed)
                ),
            )
        reasons: dict[str, int] = {}
        for p in pts:
            for reason in p.guard.reasons:
                key = stats.guard_rule(reason)
                reasons[key] = reasons.get(key, 0) + 1
        out[t.name] = results.TargetResult(
            name=t.name,
            role="floor" if t.local else "server",
            description=describe(t),
            protocol=t.protocol,
            via_gateway=t.via_gateway,
            floor=t.floor,
            direct=t.name in DIRECT,
            qps_at_slo=_estimate(qps[t.name], f),
            fit=_fit(f),
            points_valid=sum(p.valid for p in pts),
            points_total=len(pts),
            guard_reasons=reasons,
            p50_at_fixed_ms=_mean([p.p50_ms for p in fixed]),
            p99_at_fixed_ms=_mean([p.p99_ms for p in fixed if p.p99_ms is not None]),
            ratios=ratios,
        )
    comparisons = []
    for first, second in pairs:
        if first in curves and second in curves:
            r = estimate.qps_ratio_interval(cache, first, second, resamples=resamples, seed=seed)
            comparisons.append(
                results.Comparison(a=first, b=second, qps_ratio=_estimate(r), verdict=verdict(first, second, r))
            )
    return Summary(out, comparisons)


def verdict(a: str, b: str, r: estimate.Interval) -> str:
    """Which holds more at the SLO, from the paired ratio's interval: a ranks above b only when the
    whole 95 % interval of a/b lies above 1."""
    if r.estimate is None or r.low is None or r.high is None:
        return "not estimable"
    if r.low > 1:
        return f"{a} holds more"
    if r.high < 1:
        return f"{b} holds more"
    return "indistinguishable"


def converged(targets: dict[str, results.TargetResult], half_width: float) -> bool:
    """Every direct target has an interval within ± ``half_width`` of its estimate."""
    direct = [t for t in targets.values() if t.direct]
    return bool(direct) and all(
        t.qps_at_slo.half_width is not None and t.qps_at_slo.half_width <= half_width for t in direct
    )


def describe(t: Target) -> str:
    if t.local and t.local != "trivial":
        kind = t.local.removeprefix("floor-").removesuffix("-batching")
        how = "batching like its server" if t.local.endswith("-batching") else "no batching"
        return f"{kind} in-process behind the leanest server ({how}; {t.protocol.upper()})"
    via = "through the gateway to " if t.via_gateway else ""
    return f"{via}{t.backend or 'auto'} ({t.protocol.upper()})"


def _latency_ratio(
    per: dict[str, list[results.PointRecord]], target: str, floor: str, rate: float, key: str, resamples: int, seed: int
) -> estimate.Interval:
    def at(name: str) -> dict[int, float]:
        rows: dict[int, list[float]] = {}
        for p in per.get(name, []):
            v = getattr(p, key)
            if p.valid and v is not None and math.isclose(p.rate, rate):
                rows.setdefault(p.block, []).append(v)
        return {b: float(np.mean(v)) for b, v in rows.items()}

    return estimate.paired_ratio_interval(at(target), at(floor), resamples=resamples, seed=seed)


def _estimate(i: estimate.Interval, f: estimate.Fit | None = None) -> results.Estimate:
    ci = (i.low, i.high) if i.low is not None and i.high is not None else None
    reason = i.reason or (f.reason if f is not None and i.estimate is None else "")
    return results.Estimate(estimate=i.estimate, ci95=ci, reason=reason)


def _fit(f: estimate.Fit) -> results.CurveFit:
    k = f.knee
    return results.CurveFit(
        method=f.method,  # type: ignore[arg-type]
        model_qps=f.model_qps,
        isotonic_qps=f.isotonic_qps,
        a_ms=k.a_ms if k else None,
        b=k.b if k else None,
        mu=k.mu if k else None,
        highest_pass=f.highest_pass,
        lowest_fail=f.lowest_fail,
        reason=f.reason,
    )


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
