"""QPS@SLO from every measured point of a target, and its interval from the blocks (pure functions:
tests/load_tests/test_estimate.py checks them on synthetic points drawn from a known curve).

The model: a server's p99 rises with the offered rate λ like a queue nearing saturation,

    p99(λ) = a + b / (μ − λ)          (λ < μ; a: the latency floor, μ: the saturation rate)

fitted to all of a target's valid points at once (scipy.optimize.least_squares on log p99, a
robust soft-L1 loss, so a stray point moves the fit little). A point that failed (errors, or a p99
far above the SLO, or never answered) says only that its p99 was *above* some level: it is
censored, and counts against the fit only when the curve passes below that level (a hinge).
QPS@SLO is where the fitted curve meets the SLO: λ* = μ − b / (SLO − a).

Beside it, model-free:
- the isotonic fit (scipy.optimize.isotonic_regression: the best non-decreasing curve through
  log p99) and where it crosses the SLO; used when the model cannot be fitted, and as a check;
- the bracket: the highest rate seen passing and the lowest seen failing (valid points only).

The interval: the run is made of *blocks* (each visits every target at several rates), so blocks
are the independent units. scipy.stats.bootstrap resamples whole blocks with replacement and
refits; the 95 % CI is the estimate ± Student's t (blocks − 1 degrees of freedom) × the bootstrap's
standard error. (Its percentile interval under-covers with as few blocks as a run affords: 82 % at
4 blocks and 82-90 % at 6 on synthetic runs, against 95-100 % for this one; ``INTERVAL``.) Ratios (a
server over its floor) resample the same blocks for both, so what a block shares (the machine's
state at the time) cancels out.

Not estimable (a reason instead of a number): no point passes, no point fails (the knee was never
reached), fewer than MIN_BLOCKS blocks, or more than MAX_UNFITTED of the resamples cannot be fitted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Tuning constants.
CENSOR_FACTOR = 3.0  # a p99 above this many SLOs (or infinite) is censored: "above 3 SLOs" is all it says
LOSS_SCALE = 0.15  # soft-L1 scale on log p99: residuals beyond ~15 % count linearly, not squared
MIN_BLOCKS = 3  # an interval over fewer blocks is not estimable
EXTRAPOLATION = 1.5  # λ* beyond this factor outside the measured rates is not an estimate
CONFIDENCE = 0.95
INTERVAL = "t"  # "t": estimate ± t(blocks − 1) × the bootstrap standard error; "percentile": scipy's
RESAMPLES = 999  # bootstrap resamples for a reported interval
QUICK_RESAMPLES = 199  # for the stopping rule between blocks
# A resample that drew no block with a valid failing (or passing) point cannot be fitted. Up to this
# share of them are left out of the standard error (and said so); beyond it there is no interval.
MAX_UNFITTED = 0.05


@dataclass(frozen=True)
class Curve:
    """A target's points (one entry each): offered rate, p99 (inf when > 1 % never answered),
    failed requests, and the block the point belongs to."""

    rate: np.ndarray
    p99_ms: np.ndarray
    failed: np.ndarray
    block: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[tuple[float, float, int, int]]) -> Curve:
        a = np.asarray(rows, dtype=float).reshape(-1, 4)
        return cls(a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3].astype(int))

    def take(self, blocks: Sequence[int] | np.ndarray) -> Curve:
        """The points of these blocks, each as often as it is listed (a bootstrap resample)."""
        idx = np.concatenate([np.flatnonzero(self.block == b) for b in blocks]) if len(blocks) else np.zeros(0, int)
        return Curve(self.rate[idx], self.p99_ms[idx], self.failed[idx], self.block[idx])

    def __len__(self) -> int:
        return len(self.rate)


def passes(p99_ms: np.ndarray, failed: np.ndarray, slo_ms: float) -> np.ndarray:
    return (failed == 0) & (p99_ms <= slo_ms)


@dataclass(frozen=True)
class Knee:
    """The fitted p99(λ) = a + b / (μ − λ)."""

    a_ms: float
    b: float  # ms · req/s
    mu: float  # req/s

    def p99_ms(self, rate: np.ndarray | float) -> np.ndarray:
        gap = self.mu - np.asarray(rate, dtype=float)
        return np.where(gap > 0, self.a_ms + self.b / np.maximum(gap, 1e-12), np.inf)

    def rate_at(self, slo_ms: float) -> float:
        return self.mu - self.b / (slo_ms - self.a_ms) if slo_ms > self.a_ms else math.nan


@dataclass(frozen=True)
class Fit:
    """QPS@SLO of one set of points: the model's, the isotonic fit's and the model-free bracket."""

    qps: float | None  # the estimate (the model's, else the isotonic fit's); None: not estimable
    method: str  # "model", "isotonic" or "none"
    model_qps: float | None
    isotonic_qps: float | None
    knee: Knee | None
    highest_pass: float | None  # the bracket, from the points themselves
    lowest_fail: float | None
    reason: str = ""  # why not estimable (or why the model was not used)


def bracket(curve: Curve, slo_ms: float) -> tuple[float | None, float | None]:
    ok = passes(curve.p99_ms, curve.failed, slo_ms)
    hi = float(curve.rate[ok].max()) if ok.any() else None
    lo = float(curve.rate[~ok].min()) if (~ok).any() else None
    return hi, lo


def _censoring(curve: Curve, slo_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """(censored, level ms): a censored point's p99 is known only to be above its level."""
    cap = CENSOR_FACTOR * slo_ms
    censored = (curve.failed > 0) | ~(curve.p99_ms < cap)
    level = np.where(curve.p99_ms >= cap, cap, np.where(censored, slo_ms, curve.p99_ms))
    return censored, level


def fit_knee(curve: Curve, slo_ms: float, start: Knee | None = None) -> Knee | None:
    """The least-squares knee over all points (log space, soft-L1, censored points as hinges), from
    ``start`` (a bootstrap resample starts from the full fit) or else several starts; None when it
    does not converge."""
    from scipy.optimize import least_squares  # here: the generator image imports this package without SciPy

    censored, level = _censoring(curve, slo_ms)
    rate, logy = curve.rate, np.log(np.maximum(level, 1e-6))
    exact = ~censored
    if exact.sum() < 2:
        return None

    def residuals(x: np.ndarray) -> np.ndarray:
        a, b, mu = np.exp(x)
        gap = np.maximum(mu - rate, mu * 1e-6)
        logf = np.log(a + b / gap)
        r = logf - logy
        return np.where(exact, r, np.minimum(r, 0.0))  # censored: only a curve below the level is wrong

    ok = passes(curve.p99_ms, curve.failed, slo_ms)
    lo_rate, hi_rate = float(rate.min()), float(rate.max())
    top = float(rate[ok].max()) if ok.any() else lo_rate
    a0 = max(1e-3, 0.7 * float(np.min(level[exact])))
    bounds = (np.log([1e-4, 1e-6, 0.5 * lo_rate]), np.log([slo_ms, 1e9, 10.0 * hi_rate]))
    starts = []
    if start is not None:
        starts.append(np.log([start.a_ms, start.b, start.mu]))
    for mu0 in (1.1 * top, 1.5 * top, 1.05 * hi_rate, 2.0 * top):
        mu0 = float(np.clip(mu0, np.exp(bounds[0][2]) * 1.01, np.exp(bounds[1][2]) * 0.99))
        gap0 = max(mu0 - top, 1e-3 * mu0)
        b0 = max(1e-5, (slo_ms - a0) * gap0)
        starts.append(np.log([min(a0, 0.99 * slo_ms), b0, mu0]))
    best = None
    for x in starts:
        x0 = np.clip(x, bounds[0] + 1e-9, bounds[1] - 1e-9)
        try:
            r = least_squares(residuals, x0, bounds=bounds, loss="soft_l1", f_scale=LOSS_SCALE, method="trf")
        except (ValueError, FloatingPointError):
            continue
        if np.all(np.isfinite(r.x)) and (best is None or r.cost < best.cost):
            best = r
        if start is not None and r.success:
            break  # the full fit's optimum was a good start: the resample's is near it
    if best is None:
        return None
    a, b, mu = (float(v) for v in np.exp(best.x))
    return Knee(a, b, mu)


def isotonic_rate(curve: Curve, slo_ms: float) -> float | None:
    """Where the best non-decreasing fit of log p99 against the rate crosses the SLO (linear in the
    rate between the two fitted points on either side); None without a crossing."""
    from scipy.optimize import isotonic_regression

    _, level = _censoring(curve, slo_ms)
    level = np.where(curve.failed > 0, np.maximum(level, slo_ms * 1.0001), level)  # a failure fails the SLO
    order = np.argsort(curve.rate, kind="stable")
    rate, logy = curve.rate[order], np.log(np.maximum(level[order], 1e-6))
    fitted = isotonic_regression(logy, increasing=True).x
    above = np.flatnonzero(fitted > math.log(slo_ms))
    if not len(above) or above[0] == 0:
        return None
    i = above[0]
    x0, x1, y0, y1 = rate[i - 1], rate[i], fitted[i - 1], fitted[i]
    if x1 <= x0 or y1 <= y0:
        return float(x0)
    return float(x0 + (math.log(slo_ms) - y0) / (y1 - y0) * (x1 - x0))


def fit(curve: Curve, slo_ms: float, start: Knee | None = None) -> Fit:
    """QPS@SLO from every point of one target (see the module's docstring); ``start``: fit_knee's."""
    hi, lo = bracket(curve, slo_ms)
    none = Fit(None, "none", None, None, None, hi, lo)
    if len(curve) == 0:
        return _with(none, "no valid point")
    if hi is None:
        return _with(none, f"no valid point meets the SLO (the lowest, at {curve.rate.min():,.0f} req/s, fails)")
    if lo is None:
        return _with(none, f"no valid point fails the SLO: every one up to {hi:,.0f} req/s passes (the knee is higher)")
    iso = isotonic_rate(curve, slo_ms)
    knee = fit_knee(curve, slo_ms, start)
    model = knee.rate_at(slo_ms) if knee else math.nan
    lo_rate, hi_rate = float(curve.rate.min()), float(curve.rate.max())
    in_range = math.isfinite(model) and lo_rate / EXTRAPOLATION <= model <= hi_rate * EXTRAPOLATION
    model_qps = float(model) if in_range else None
    if model_qps is not None:
        return Fit(model_qps, "model", model_qps, iso, knee, hi, lo)
    why = "the model did not converge" if knee is None else f"the model's λ* ({model:,.0f}) lies outside the points"
    if iso is not None:
        return Fit(iso, "isotonic", None, iso, knee, hi, lo, why)
    return Fit(None, "none", None, None, knee, hi, lo, f"{why}, and the isotonic fit never crosses the SLO")


def _with(f: Fit, reason: str) -> Fit:
    return Fit(f.qps, f.method, f.model_qps, f.isotonic_qps, f.knee, f.highest_pass, f.lowest_fail, reason)


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None
    blocks: int
    reason: str = ""  # why there is no interval (or no estimate)

    @property
    def half_width(self) -> float | None:
        """Half the interval's width as a share of the estimate (the stopping rule's measure)."""
        if self.estimate is None or self.low is None or self.high is None or self.estimate <= 0:
            return None
        return (self.high - self.low) / 2 / self.estimate


def block_interval(
    blocks: Sequence[int] | np.ndarray,
    statistic: Callable[[np.ndarray], float],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    method: str = INTERVAL,
    unknown: str = "not estimable from all the blocks together",
) -> Interval:
    """``statistic`` of all ``blocks``, and its 95 % bootstrap interval over whole blocks
    (scipy.stats.bootstrap; ``INTERVAL`` says how it is read off; the same ``seed`` draws the same
    resamples for every statistic, so a ratio and its parts see the same blocks). ``statistic`` gets
    an array of block ids (repeats allowed) and returns a number, or nan where it cannot."""
    from scipy.stats import DegenerateDataWarning, bootstrap, t

    ids = np.unique(np.asarray(blocks, dtype=int))
    value = float(statistic(ids)) if len(ids) else math.nan
    estimate = value if math.isfinite(value) else None
    if estimate is None:
        return Interval(None, None, None, len(ids), unknown)
    if len(ids) < MIN_BLOCKS:
        return Interval(estimate, None, None, len(ids), f"not estimable: {len(ids)} block(s) (< {MIN_BLOCKS})")
    with warnings.catch_warnings():
        # scipy warns when some resamples give nan; they are counted just below and the interval refused
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap(
            (ids,),
            lambda sample: float(statistic(sample)),
            vectorized=False,
            n_resamples=resamples,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    fitted = np.isfinite(dist)
    bad = int((~fitted).sum())
    if bad > MAX_UNFITTED * len(dist):
        why = f"not estimable: {bad} of {len(dist)} resamples could not be fitted"
        return Interval(estimate, None, None, len(ids), why)
    note = f"{bad} of {len(dist)} resamples could not be fitted and were left out" if bad else ""
    if method == "percentile":
        if bad:
            return Interval(estimate, None, None, len(ids), f"not estimable: {note}")
        return Interval(estimate, float(res.confidence_interval.low), float(res.confidence_interval.high), len(ids))
    se = float(np.std(dist[fitted], ddof=1)) if bad else float(res.standard_error)
    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(ids) - 1) * se)
    return Interval(estimate, max(0.0, estimate - half), estimate + half, len(ids), note)


class FitCache:
    """Fits of resampled curves, by (target, blocks drawn): a ratio's bootstrap reuses its parts'."""

    def __init__(self, curves: dict[str, Curve], slo_ms: float):
        self.curves, self.slo_ms = curves, slo_ms
        self._fits: dict[tuple[str, tuple[int, ...]], float] = {}
        self._full: dict[str, Knee | None] = {}

    def qps(self, target: str, blocks: np.ndarray) -> float:
        key = (target, tuple(sorted(int(b) for b in blocks)))
        if key not in self._fits:
            if target not in self._full:
                self._full[target] = fit(self.curves[target], self.slo_ms).knee
            f = fit(self.curves[target].take(key[1]), self.slo_ms, self._full[target])
            self._fits[key] = f.qps if f.qps is not None else math.nan
        return self._fits[key]


def qps_interval(cache: FitCache, target: str, *, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    curve = cache.curves[target]
    why = fit(curve, cache.slo_ms).reason or "not estimable"
    return block_interval(
        np.unique(curve.block), lambda b: cache.qps(target, b), resamples=resamples, seed=seed, unknown=why
    )


def qps_ratio_interval(
    cache: FitCache, target: str, floor: str, *, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """QPS@SLO of ``target`` over its floor's, paired: both refitted on the same resampled blocks."""
    blocks = np.intersect1d(np.unique(cache.curves[target].block), np.unique(cache.curves[floor].block))

    def ratio(b: np.ndarray) -> float:
        f = cache.qps(floor, b)
        return cache.qps(target, b) / f if f > 0 else math.nan

    why = f"QPS@SLO of {target} or of {floor} is not estimable"
    return block_interval(blocks, ratio, resamples=resamples, seed=seed, unknown=why)


def paired_ratio_interval(
    target: dict[int, float], floor: dict[int, float], *, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """A latency ratio at a fixed rate: the mean over the resampled blocks of the target's figure over
    the mean of its floor's in the same blocks (blocks that have both)."""
    blocks = sorted(set(target) & set(floor))
    t = {b: target[b] for b in blocks if math.isfinite(target[b]) and math.isfinite(floor[b])}
    f = {b: floor[b] for b in t}

    def ratio(b: np.ndarray) -> float:
        den = float(np.mean([f[int(i)] for i in b]))
        return float(np.mean([t[int(i)] for i in b])) / den if den > 0 else math.nan

    why = "no block has a valid point of both at this rate"
    return block_interval(sorted(t), ratio, resamples=resamples, seed=seed, unknown=why)


def synthetic_curve(
    knee: Knee,
    rates: Sequence[float],
    blocks: int,
    *,
    noise: float = 0.08,
    seed: int = 0,
    block_noise: float = 0.0,
) -> Curve:
    """Points drawn from a known curve (for tests and for checking a design): each block measures
    every rate once; log-normal noise per point (``noise``) and per block (``block_noise``: the
    machine's state, shared by all points of a block); a rate at or past μ is all failures."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[float, float, int, int]] = []
    for blk in range(blocks):
        shift = rng.normal(0.0, block_noise)
        for r in rates:
            true = float(knee.p99_ms(r))
            if math.isfinite(true):
                rows.append((r, true * math.exp(rng.normal(0.0, noise) + shift), 0, blk))
            else:
                rows.append((r, math.inf, int(r), blk))
    return Curve.of(rows)


def describe(i: Interval, fmt: str = ",.0f") -> dict[str, Any]:
    """``{"estimate": …, "ci95": [low, high] | None, "reason": …}``, the shape results.json uses."""
    return {
        "estimate": i.estimate,
        "ci95": [i.low, i.high] if i.low is not None and i.high is not None else None,
        "reason": i.reason,
    }
