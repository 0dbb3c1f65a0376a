"""Seconds of real open-loop load through the block runner against the session's stack: the method
end to end (Poisson sends split across 2 Locust processes sharing one schedule, block 0's climb and
the blocks after it, the guard, a batching floor and a gRPC floor started and measured beside their
servers, the typed results.json and the report), with a loose SLO so the outcome does not depend on
this machine's speed: every point passes, so QPS@SLO is honestly "not estimable" (the knee is
above the highest rate offered) while the paired latency ratios have intervals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from load_tests import results
from tests.conftest import REPO

TARGETS = ("tfserving", "torchserve-grpc")
FLOORS = ("floor-savedmodel-batching", "floor-torchscript-grpc")  # added by the runner: the floors they match
START, FIXED, MAX = 30.0, 40.0, 60.0
BLOCKS = 3


@pytest.fixture(scope="module")
def run(serving_stack, artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, results.CapacityRun]:
    out = tmp_path_factory.mktemp("capacity")
    env = {**os.environ, **{f"{k.upper()}_PORT": str(v) for k, v in serving_stack.ports.as_dict().items()}}
    # fmt: off
    cmd = [
        sys.executable, "-m", "load_tests.runs.capacity", "--targets", ",".join(TARGETS), "--slo-ms", "1000",
        "--start-rate", str(START), "--fixed-rate", str(FIXED), "--max-rate", str(MAX), "--knee-steps", "1.0",
        "--min-blocks", str(BLOCKS), "--max-blocks", str(BLOCKS), "--min-samples", "30", "--min-window-s", "0.4",
        "--windows", "3", "--warmup", "0.2", "--no-calibration", "--processes", "2", "--resamples", "99",
        "--artifacts", str(artifacts), "--out", str(out),
    ]
    # fmt: on
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "using the stack that is already running" in proc.stdout
    assert "block 2 done" in proc.stdout and "QPS@SLO" in proc.stdout  # progress per block
    return out, results.read(out)


def test_results_json_is_typed_and_carries_what_users_read(run: tuple[Path, results.CapacityRun]) -> None:
    out, r = run
    body = json.loads((out / "results.json").read_text())
    jsonschema.validate(body, json.loads(results.SCHEMA_FILE.read_text()))
    assert body["schema_version"] == results.SCHEMA_VERSION and isinstance(body["dirty"], bool)
    assert len(body["commit"]) == 40 and body["dirty"] == bool(body["source"]["changes"])
    assert list(body["targets"]) == [*TARGETS, *FLOORS]
    for t in body["targets"].values():  # (a busy machine may invalidate a target's points: the guard's job)
        assert t["points_total"] >= t["points_valid"] >= 0 and set(t["qps_at_slo"]) >= {"estimate", "ci95"}
    assert sum(t["points_valid"] for t in body["targets"].values()) > 0
    assert r.method.stopped == f"--max-blocks {BLOCKS} reached" and len(r.blocks) == BLOCKS


def test_every_point_was_open_loop_on_two_processes(run: tuple[Path, results.CapacityRun]) -> None:
    _, r = run
    assert {p.target for p in r.points} == {*TARGETS, *FLOORS}
    assert {p.block for p in r.points} == set(range(BLOCKS))
    for p in r.points:
        g = p.guard
        assert p.failed == 0 and p.samples > 0 and p.passes, p
        assert g.generator_processes == 2, p  # two Locust processes shared the schedule
        assert p.throughput == pytest.approx(p.rate, rel=0.6), p  # Poisson arrivals at the offered rate
        assert g.send_lag_p50_ms is not None and g.send_lag_p99_ms is not None
        assert 0 <= g.send_lag_p50_ms <= g.send_lag_p99_ms < 1000 and g.lag_impact_ms is not None
        assert g.generator_cpu_share is not None and 0 < g.generator_cpu_share < 2
        assert p.p50_ms is not None and p.p99_ms is not None and p.p50_ms <= p.p99_ms
        assert p.rate <= MAX
    tf = [p for p in r.points if p.target == "tfserving" and p.valid and p.breakdown]
    assert tf and all(p.breakdown and p.breakdown.total_us for p in tf)  # the servers' own account
    batched = [p for p in r.points if p.target == "floor-savedmodel-batching" and p.batch]
    assert batched, "the batching floor reports its batches (X-Batch-Requests)"


def test_block_0_climbs_and_later_blocks_visit_the_fixed_rate(run: tuple[Path, results.CapacityRun]) -> None:
    _, r = run
    for name in (*TARGETS, *FLOORS):
        first = sorted(p.rate for p in r.points if p.target == name and p.block == 0)
        assert first == [START, MAX]  # doubling from the start rate, capped at the highest rate offered
        for b in range(1, BLOCKS):
            assert FIXED in {p.rate for p in r.points if p.target == name and p.block == b}


def test_a_knee_never_reached_is_not_estimable_and_says_why(run: tuple[Path, results.CapacityRun]) -> None:
    _, r = run
    for t in r.targets.values():
        q = t.qps_at_slo
        assert q.estimate is None and q.ci95 is None and q.reason
        valid = [p.rate for p in r.points if p.target == t.name and p.valid]
        if valid:  # the model-free bracket says as much: the highest valid rate passes, none fails
            assert "no valid point fails the SLO" in q.reason
            assert t.fit.highest_pass == max(valid) and t.fit.lowest_fail is None


def test_each_server_is_beside_the_floor_it_matches(run: tuple[Path, results.CapacityRun]) -> None:
    out, r = run
    assert r.targets["tfserving"].floor == "floor-savedmodel-batching"  # a batching server: the batching floor
    assert r.targets["torchserve-grpc"].floor == "floor-torchscript-grpc"  # a gRPC route: the gRPC floor
    cmd = " ".join(r.environment.local_servers["floor-torchscript-batching"])
    assert "--batch-size" in cmd and "--grpc-port" in cmd
    for name in TARGETS:
        ratios = r.targets[name].ratios
        assert ratios is not None and ratios.rate == FIXED
        for e in (ratios.p50, ratios.p99):  # paired within the blocks at the fixed rate
            valid_blocks = len({p.block for p in r.points if p.target == name and p.valid and p.rate == FIXED})
            if valid_blocks >= 3:
                assert e.estimate is not None and e.estimate > 0 and e.ci95 is not None
        assert ratios.qps_at_slo.estimate is None and ratios.qps_at_slo.reason  # neither QPS@SLO is estimable
    md = (out / "report.md").read_text()
    assert "## Each server against the floor it matches" in md and "| torchserve-grpc | floor-torchscript-grpc |" in md


def test_the_report_says_what_ran(run: tuple[Path, results.CapacityRun]) -> None:
    out, r = run
    md = (out / "report.md").read_text()
    for needle in ("TF Serving: **", "## QPS@SLO", "| tfserving |", "## The generator guard", "## The blocks",
                   "## Environment", "latency_vs_rate.png", "capacity.png", "2 processes"):  # fmt: skip
        assert needle in md, needle
    assert ("**Not committed-quality**" in md) == r.dirty
    for png in ("capacity.png", "latency_vs_rate.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert r.environment.tfserving.startswith(("stand-in", "real"))
