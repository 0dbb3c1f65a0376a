"""A few seconds of real Locust load against the session's stack: zero failures, a well-formed report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from load_tests.generator import checks
from tests.conftest import REPO


@pytest.fixture(scope="module")
def report_dir(serving_stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("load-report")
    env = {**os.environ, **{f"{k.upper()}_PORT": str(v) for k, v in serving_stack.ports.as_dict().items()}}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "load_tests.runs.matrix",
            "--targets",
            "tfserving,torchserve,gateway-torchserve,gateway-image,gateway-compare",
            "--users",
            "1,2",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "using the stack that is already running" in proc.stdout
    return out


def test_zero_failures_and_real_requests(report_dir: Path) -> None:
    results = [r for r in orjson.loads((report_dir / "results.json").read_bytes()) if "target" in r]
    assert len(results) == 10
    for r in results:
        assert r["failures"] == 0 and r["rps"] > 20, r


def test_percentiles_are_not_whole_milliseconds(report_dir: Path) -> None:
    results = [r for r in orjson.loads((report_dir / "results.json").read_bytes()) if "target" in r]
    values = [r[f"p{q}_us"] for r in results for q in (50, 90, 99)]
    assert any(v % 1000 for v in values)
    assert all(r["p50_us"] <= r["p99_us"] <= r["p99.9_us"] for r in results)


def test_report_is_complete(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    for needle in (
        "| tfserving | 1 |",
        "| gateway-compare | 2 |",
        "## Gateway vs direct",
        "| torchserve | 1 |",
        "Server-side time",
        "TF Serving: **",
        "## Environment",
        "latency.png",
        "throughput.png",
    ):
        assert needle in md, needle
    for png in ("latency.png", "throughput.png"):
        assert (report_dir / png).read_bytes().startswith(b"\x89PNG")
    assert list((report_dir / "locust").glob("*_stats.csv")) and list((report_dir / "locust").glob("*.html"))


@pytest.mark.parametrize(
    ("body", "compare", "ok"),
    [
        (b'{"predictions": [[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]], "labels": [0]}', False, True),
        (b'{"predictions": [[0.5,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]]}', False, False),
        (b'{"predictions": [[1.0]]}', False, False),
        (b"<html>", False, False),
        (b'{"results": {"a": {"error": {}}, "b": {}}}', True, False),
    ],
)
def test_response_checks(body: bytes, compare: bool, ok: bool) -> None:
    assert (checks.problem(body, compare=compare) is None) is ok
