"""make compare: its figures on synthetic points with a known answer, and a short real run against
the session's stack (the harness, open-loop points, the typed compare.json, report.md and plot)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from load_tests import results
from load_tests.runs.compare import latency_verdict, summarise, verdict_lines
from tests.conftest import REPO

# Known answer: at 100 req/s TF Serving's p50 is 2.0 ms and TorchServe's 3.0 ms (a/b = 0.67, they
# differ); at 300 req/s both 4.0 ms (indistinguishable). Floors at 1.0 ms. Each block shifts every
# figure of the block alike (the machine's state), plus a little noise per point.
TRUE_P50 = {("tfserving", 100.0): 2.0, ("torchserve", 100.0): 3.0, ("tfserving", 300.0): 4.0,
            ("torchserve", 300.0): 4.0}  # fmt: skip
FLOORS = {"tfserving": "floor-savedmodel-batching", "torchserve": "floor-torchscript-batching"}


def _point(target: str, rate: float, block: int, p50: float, valid: bool = True) -> results.PointRecord:
    reasons = [] if valid else ["send lag moved p99 by 0.90 ms (> 5% of the 10 ms SLO)"]
    guard = results.Guard(0.3, 0.15, 1, 300.0, 0.4, 0.0, 0.03, 0.2, 0.9 if not valid else 0.01, 3 * p50, reasons)
    return results.PointRecord(
        target=target, block=block, rate=rate, seed=block, p50_ms=p50, p99_ms=3 * p50, throughput=rate, samples=600,
        failed=0, stable=True, windows=2, passes=True, valid=valid, guard=guard,
    )  # fmt: skip


def _points(blocks: int = 5, seed: int = 0) -> list[results.PointRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(blocks):
        shift = math.exp(rng.normal(0, 0.1))
        for (target, rate), p50 in TRUE_P50.items():
            out.append(_point(target, rate, b, p50 * shift * math.exp(rng.normal(0, 0.02))))
            out.append(_point(FLOORS[target], rate, b, 1.0 * shift * math.exp(rng.normal(0, 0.02))))
    return out


def test_the_known_difference_is_found_and_the_known_tie_is_not() -> None:
    points = _points()
    cells, ratios = summarise(points, ("tfserving", "torchserve"), FLOORS, [100.0, 300.0], resamples=999)
    low, high = ratios
    assert low.p50.estimate == pytest.approx(2 / 3, rel=0.03)
    assert low.p50.ci95 is not None and low.p50.ci95[1] < 1
    assert low.verdict.startswith("p50: torchserve slower")
    assert high.p50.ci95 is not None and high.p50.ci95[0] < 1 < high.p50.ci95[1]
    assert high.verdict.startswith("p50: indistinguishable")
    cell = {(c.target, c.rate): c for c in cells}
    tf = cell[("tfserving", 100.0)]
    # Paired within blocks, the block's shift cancels: the ratio to the floor is tight around 2.
    assert tf.p50_over_floor is not None and tf.p50_over_floor.estimate == pytest.approx(2.0, rel=0.03)
    assert tf.p50_over_floor.ci95 is not None and tf.p50_over_floor.ci95[1] - tf.p50_over_floor.ci95[0] < 0.2
    assert (tf.points, tf.valid, tf.floor) == (5, 5, "floor-savedmodel-batching")
    assert cell[("floor-savedmodel-batching", 100.0)].p50_over_floor is None  # a floor has none


def test_invalid_points_are_left_out_and_counted_in_the_verdict() -> None:
    points = _points()
    points.append(_point("tfserving", 100.0, 0, 50.0, valid=False))  # would wreck the mean if kept
    cells, ratios = summarise(points, ("tfserving", "torchserve"), FLOORS, [100.0, 300.0], resamples=199)
    tf = next(c for c in cells if (c.target, c.rate) == ("tfserving", 100.0))
    assert (tf.points, tf.valid) == (6, 5) and tf.p50_ms.estimate is not None and tf.p50_ms.estimate < 3
    lines = verdict_lines(points, cells, ratios)
    assert lines[0] == f"VERDICT: {len(points) - 1} of {len(points)} points valid; left out: send lag (1)"
    assert lines[-1] == "VERDICT: tfserving and torchserve differ at 100 req/s (p50: torchserve slower; p99: " \
        "torchserve slower)"  # fmt: skip
    # Only one rate judged: the verdict names the other as not judged, not as "no difference".
    one = [p for p in points if not (p.rate == 300.0 and p.block > 1)]
    cells, ratios = summarise(one, ("tfserving", "torchserve"), FLOORS, [100.0, 300.0], resamples=199)
    assert verdict_lines(one, cells, ratios)[-1].endswith(
        "; not judged at 300 req/s (fewer than 3 blocks with valid points of both)"
    )


def test_an_interval_that_reaches_zero_is_marked_and_judges_nothing() -> None:
    """One wild block (a stall on a shared machine) makes the t interval reach 0: the figure is
    marked uninformative and the rate 'too noisy to tell', not 'indistinguishable'."""
    points = []
    for b, slow in enumerate([1.0, 1.0, 1.0, 40.0]):
        points += [_point("tfserving", 100.0, b, 2.0 * slow), _point("torchserve", 100.0, b, 2.0)]
    cells, ratios = summarise(points, ("tfserving", "torchserve"), {}, [100.0], resamples=999)
    tf = next(c for c in cells if c.target == "tfserving")
    assert tf.p50_ms.ci95 is not None and tf.p50_ms.ci95[0] == 0.0 and tf.p50_ms.uninformative
    assert ratios[0].p50.uninformative and ratios[0].verdict == "p50: too noisy to tell; p99: too noisy to tell"
    lines = verdict_lines(points, cells, ratios)
    assert "0.00–" in lines[1] and "uninformative)" in lines[1]
    assert lines[-1] == "VERDICT: no rate could be judged; too noisy to tell at 100 req/s (the ratio's interval " \
        "reaches 0): re-run with more --blocks; or on a quieter machine"  # fmt: skip
    quiet = [p for p in points if p.block < 3]  # without the wild block: a tie, judged
    cells, ratios = summarise(quiet, ("tfserving", "torchserve"), {}, [100.0], resamples=999)
    assert not ratios[0].p50.uninformative and "indistinguishable" in ratios[0].verdict


def test_a_run_the_send_lag_left_unjudged_says_so() -> None:
    """More blocks do not help when the generator's send lag invalidates the points: the verdict
    names it rather than the machine's load."""
    points = [_point(p.target, p.rate, p.block, p.p50_ms or 0.0, valid=p.block < 2) for p in _points()]
    cells, ratios = summarise(points, ("tfserving", "torchserve"), FLOORS, [100.0, 300.0], resamples=99)
    last = verdict_lines(points, cells, ratios)[-1]
    assert last.startswith("VERDICT: no rate could be judged; not judged at 100, 300 req/s")
    lag = f"{len(points) * 3 // 5} of {len(points)} points were left out for the generator's send lag"
    assert last.endswith(f"{lag}, which more blocks do not shorten (make bench-generator measures it on this machine)")


def test_too_few_blocks_give_no_interval_and_no_verdict() -> None:
    points = [p for p in _points() if p.block < 2]
    _, ratios = summarise(points, ("tfserving", "torchserve"), FLOORS, [100.0], resamples=99)
    assert ratios[0].p50.ci95 is None and "2 block(s)" in ratios[0].p50.reason
    assert latency_verdict("a", "b", ratios[0].p50) == "not estimable"


def test_a_short_real_run_writes_its_verdict_report_and_plot(
    serving_stack, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("compare")
    env = {**os.environ, **{f"{k.upper()}_PORT": str(v) for k, v in serving_stack.ports.as_dict().items()}}
    cmd = [sys.executable, "-m", "load_tests.runs.compare", "--rates", "40", "--blocks", "3", "--no-floors",
           "--min-samples", "40", "--min-window-s", "0.4", "--warmup", "0.2", "--resamples", "99",
           "--artifacts", str(artifacts), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    last = proc.stdout.strip().splitlines()
    # (this VM's idle wake-ups can invalidate low-rate points: then the verdict says nothing was judged)
    assert last[-1].startswith(("VERDICT: tfserving and torchserve", "VERDICT: no rate could be judged"))
    assert last[-3].startswith("VERDICT: ")
    run = results.read_compare(out)
    assert [(p.target, p.rate) for p in run.points if p.block == 0] != []
    assert len(run.points) == 6 and {p.target for p in run.points} == {"tfserving", "torchserve"}
    assert all(p.p50_ms is not None and p.samples > 0 and p.failed == 0 for p in run.points)
    assert run.verdict == last[-len(run.verdict) :]
    report = (out / "report.md").read_text()
    assert "tfserving (stand-in) vs torchserve" in report and "![p50 and p99 per rate](compare.png)" in report
    assert (out / "compare.png").stat().st_size > 10_000
