"""The capacity report from typed results (load_tests/reports/capacity.py): its first line answers
the question from the data, it says whether the tree was committed and clean, and every figure it
ranks on carries an interval. The committed CPU report is what its results.json renders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from load_tests import results
from load_tests.reports import capacity
from tests.conftest import REPO
from tests.load_tests.synthetic import capacity_run, simulate

COMMITTED = REPO / "docs" / "load-report-2cpu"


@pytest.fixture(scope="module")
def points() -> list[results.PointRecord]:
    return simulate(max_blocks=5, seed=21)[0]


def test_the_first_line_ranks_the_servers_from_the_data(points: list[results.PointRecord], tmp_path: Path) -> None:
    run = capacity_run(points)
    text = capacity.write_capacity(tmp_path, run).read_text()
    first = text.splitlines()[2]
    c = run.comparisons[0]
    assert c.verdict == "tfserving holds more" and c.qps_ratio.ci95 is not None  # 1,000 vs 700 req/s here
    assert first.startswith("At p99 ≤ 10 ms on this machine: **TF Serving (stand-in) holds")
    assert f"{c.qps_ratio.estimate:.2f}× what TorchServe (TorchScript) holds" in first
    assert f"95 % CI {c.qps_ratio.ci95[0]:.2f}–{c.qps_ratio.ci95[1]:.2f}×" in first
    assert "**Committed-quality tree**" in text and "`0123456789ab`" in text
    for needle in ("| tfserving | ", "## Each server against the floor it matches", "| tfserving | floor-savedmodel-batching |",
                   "## The blocks", "## The generator guard", "What the generator took from the servers",
                   "latency_vs_rate.png", "capacity.png", "Not in this run"):  # fmt: skip
        assert needle in text, needle
    for png in ("capacity.png", "latency_vs_rate.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


def test_parity_is_reported_as_indistinguishable_with_the_interval(
    points: list[results.PointRecord], tmp_path: Path
) -> None:
    run = capacity_run(points)
    c = run.comparisons[0]
    c.verdict, c.qps_ratio = "indistinguishable", results.Estimate(1.03, (0.94, 1.12))
    first = capacity.headline(run)
    assert "**TF Serving (stand-in) and TorchServe (TorchScript) are indistinguishable on this machine**" in first
    assert "1.03×, 95 % CI 0.94–1.12×" in first


def test_a_dirty_tree_is_never_called_committed_quality(points: list[results.PointRecord], tmp_path: Path) -> None:
    text = capacity.write_capacity(tmp_path, capacity_run(points, dirty=True)).read_text()
    assert "**Not committed-quality**" in text and "Committed-quality tree" not in text and "`M Makefile`" in text


def test_the_committed_report_is_what_its_results_render(tmp_path: Path) -> None:
    """docs/load-report-2cpu/report.md is rendered from its results.json (and the sweep and chaos runs
    saved beside it), byte for byte, and came from a clean tree."""
    import orjson

    if "schema_version" not in orjson.loads((COMMITTED / "results.json").read_bytes()):
        pytest.skip("docs/load-report-2cpu predates the typed results (schema 2): its committed re-run replaces it")
    run = results.read(COMMITTED)
    for p in COMMITTED.iterdir():
        if p.name.startswith(("chaos-", "sweep")) or p.name == "results.json":
            shutil.copy(p, tmp_path / p.name)
    text = capacity.write_capacity(tmp_path, run).read_text()
    assert text == (COMMITTED / "report.md").read_text()
    assert run.dirty is False and "**Committed-quality tree**" in text
