"""Seconds of real open-loop load through the capacity runner against the session's stack: the
method end to end (Poisson sends split across 2 Locust processes, windows, search, repeats, CI,
verification, guard, breakdown, the floors started and measured beside the servers, report and
results.json), with a loose SLO so the outcome does not depend on this machine's speed."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import REPO

TARGETS = ("tfserving", "torchserve-grpc", "gateway-torchserve")
FLOORS = ("floor-savedmodel", "floor-torchscript")  # added by the runner: the floors of TARGETS
RATES = (30.0, 60.0)  # the search starts at the first and may not go above the second


@pytest.fixture(scope="module")
def results(serving_stack, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("capacity")
    env = {**os.environ, **{f"{k.upper()}_PORT": str(v) for k, v in serving_stack.ports.as_dict().items()}}
    # fmt: off
    cmd = [
        sys.executable, "-m", "load_tests.runs.capacity", "--targets", ",".join(TARGETS), "--repeats", "2",
        "--slo-ms", "1000", "--start-rate", str(RATES[0]), "--max-rate", str(RATES[1]), "--min-samples", "30",
        "--min-window-s", "0.4", "--max-windows", "3", "--warmup", "0.2", "--verify-s", "1.2",
        "--no-calibration", "--processes", "2", "--floor-rate", "40", "--artifacts", str(artifacts),
        "--out", str(out),
    ]
    # fmt: on
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "using the stack that is already running" in proc.stdout
    return out, orjson.loads((out / "results.json").read_bytes())


def test_capacity_entries_for_every_target(results: tuple[Path, dict[str, Any]]) -> None:
    _, r = results
    assert [c["target"] for c in r["capacity"]] == [*TARGETS, *FLOORS]
    for c in r["capacity"]:
        assert set(c) >= {"target", "slo_p99_ms", "qps", "ci95", "valid", "repeats"}
        assert c["slo_p99_ms"] == 1000 and len(c["repeats"]) == 2
        # Both rates pass a 1 s SLO on any machine, so the search ends at the cap in each repeat.
        assert c["repeats"] == [RATES[1], RATES[1]] and c["qps"] == RATES[1]
        assert c["ci95"][0] == pytest.approx(RATES[1]) and isinstance(c["valid"], bool)


def test_every_step_was_measured_open_loop(results: tuple[Path, dict[str, Any]]) -> None:
    _, r = results
    for name, searches in r["searches"].items():
        for s in searches:
            for p in s["steps"]:
                e = p["extra"]
                assert p["failed"] == 0 and p["samples"] > 0, (name, p)
                assert e["generator_processes"] == 2, (name, e)  # two Locust processes shared the schedule
                # Poisson arrivals at the offered rate: the answered throughput is near it.
                assert p["throughput"] == pytest.approx(p["rate"], rel=0.6), (name, p)
                assert 0 <= e["send_lag_p50_ms"] <= e["send_lag_p99_ms"] < 1000
                assert 0 < e["generator_core_share"] < 2 and 0 <= e["machine_idle"] <= 1
                assert 0 <= e["generator_waiting_share"] <= e["generator_core_share"]
                assert math.isfinite(p["p99_ms"]) and p["p50_ms"] <= p["p99_ms"]


def test_verification_and_breakdown(results: tuple[Path, dict[str, Any]]) -> None:
    _, r = results
    verified = {v["target"]: v for v in r["verify"]}
    assert set(verified) == {*TARGETS, *FLOORS}
    for v in verified.values():
        assert v["failed"] == 0 and v["passes"]
    tf = verified["tfserving"]["extra"]["breakdown"]
    assert tf["total_us"] > 0 and 0 <= tf["queue_us"] <= tf["total_us"]
    assert tf["batch"]["mean"] >= 1 and tf["batch"]["source"] == "processed_batch_size"
    gw = verified["gateway-torchserve"]["extra"]
    assert gw["breakdown"]["gateway_us"] > 0 and gw["breakdown"]["total_us"] > 0
    assert gw["server_cpu_us_per_req"]["gateway"] > 0 and gw["server_cpu_us_per_req"]["torchserve"] > 0
    assert verified["torchserve-grpc"]["extra"]["breakdown"] is None  # TorchServe times REST only
    assert verified["floor-torchscript"]["extra"]["server_cpu_us_per_req"]["floor-torchscript"] > 0


def test_every_target_is_beside_its_floor(results: tuple[Path, dict[str, Any]]) -> None:
    out, r = results
    assert r["floors"] == {"tfserving": "floor-savedmodel", "torchserve-grpc": "floor-torchscript",
                           "gateway-torchserve": "floor-torchscript"}  # fmt: skip
    for name in (*TARGETS, *FLOORS):
        points = r["at_floor_rate"][name]
        assert len(points) == 2 and all(p["rate"] == 40 and p["failed"] == 0 for p in points), name
    md = (out / "report.md").read_text()
    assert "## Each server against its floor" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| gateway-torchserve | floor-torchscript |"))
    assert row.count("×") == 3  # p50, p99 and QPS@SLO ratios, all measured


def test_report_says_what_ran(results: tuple[Path, dict[str, Any]]) -> None:
    out, r = results
    md = (out / "report.md").read_text()
    for needle in ("TF Serving: **", "## QPS@SLO", "| tfserving |", "Generator guard", "## Where the time goes",
                   "## Environment", "git commit", "capacity.png", "latency_vs_rate.png"):  # fmt: skip
        assert needle in md, needle
    for png in ("capacity.png", "latency_vs_rate.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert r["environment"]["tfserving"].startswith(("stand-in", "real"))
