"""results.json: one typed schema (load_tests/results.py), its committed JSON Schema equal to what
the dataclasses generate, and a run written, validated against that file and read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from load_tests import results
from tests.conftest import REPO
from tests.load_tests.synthetic import capacity_run, simulate


@pytest.fixture(scope="module")
def run() -> results.CapacityRun:
    points, _ = simulate(max_blocks=5, seed=11)
    return capacity_run(points)


def test_the_committed_schema_is_what_the_dataclasses_generate() -> None:
    committed = results.SCHEMA_FILE.read_text()
    assert committed == results.schema_text(), "run: python -m load_tests.results --schema"
    schema = json.loads(committed)
    jsonschema.Draft202012Validator.check_schema(schema)
    for key in ("schema_version", "commit", "dirty", "targets"):
        assert key in schema["required"] and schema["properties"][key]["description"]


def test_a_run_validates_against_the_committed_schema_and_reads_back(run: results.CapacityRun, tmp_path: Path) -> None:
    path = results.write(run, tmp_path)
    body = json.loads(path.read_text())
    jsonschema.validate(body, json.loads(results.SCHEMA_FILE.read_text()))
    # What a user or CI reads without the code:
    assert body["schema_version"] == results.SCHEMA_VERSION and body["dirty"] is False and len(body["commit"]) == 40
    tf = body["targets"]["tfserving"]
    assert tf["qps_at_slo"]["estimate"] > 0 and len(tf["qps_at_slo"]["ci95"]) == 2
    assert tf["points_valid"] <= tf["points_total"]
    for key in ("p50", "p99", "qps_at_slo"):
        assert set(tf["ratios"][key]) >= {"estimate", "ci95"}
    assert results.read(tmp_path) == run


def test_unknown_figures_are_written_as_null(run: results.CapacityRun, tmp_path: Path) -> None:
    run.points[0].p99_ms = float("inf")  # a point whose requests mostly failed
    run.points[0].guard.lag_impact_ms = float("nan")
    body = json.loads(results.write(run, tmp_path).read_text())
    assert body["points"][0]["p99_ms"] is None and body["points"][0]["guard"]["lag_impact_ms"] is None
    jsonschema.validate(body, json.loads(results.SCHEMA_FILE.read_text()))


def test_an_untyped_results_json_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"capacity": [], "method": {}}))
    with pytest.raises(ValueError, match=r"untyped results\.json of the bisection runner"):
        results.read(tmp_path)
    r = subprocess.run([sys.executable, "-m", "load_tests.results", "--check", str(tmp_path / "results.json")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and "schema_version None" in r.stderr
