"""The batching sweep's configurations: the grid, and the two servers' configs rewritten alike."""

from __future__ import annotations

import json
from pathlib import Path

from load_tests.reports import sweep as sweep_report
from load_tests.runs import sweep
from serving.tfserving_standin.configs import load_batching
from serving.torchserve import config


def test_the_grid_skips_delays_for_batch_one() -> None:
    grid = sweep.configurations()
    assert (1, 0) in grid and (1, 5) not in grid
    assert {(b, d) for b in (8, 32) for d in (0, 1, 2, 5)} <= set(grid)
    assert len(grid) == 9


def test_torchserve_grid_has_no_zero_delay_batches() -> None:
    # TorchServe would run a 0 ms delay as its 100 ms default (what test_effective_config_is_read sees).
    grid = sweep.configurations("torchserve")
    assert (1, 0) in grid and (8, 0) not in grid and (32, 0) not in grid
    assert {(b, d) for b in (8, 32) for d in (1, 2, 5)} <= set(grid)
    assert len(grid) == 7


def test_effective_config_is_read_from_the_running_torchserve(serving_stack) -> None:
    from serving.native import torchserve

    effective = torchserve.batching(serving_stack.ports)
    # The shipped config.properties: batchSize 32, maxBatchDelay 1 ms, one worker per model.
    shipped = config.models(config.read())
    assert {(m["batchSize"], m["maxBatchDelay"]) for m in shipped.values()} == {(32, 1)}
    for m in effective.values():
        assert (m["batchSize"], m["maxBatchDelay"], m["minWorkers"], m["maxWorkers"]) == (32, 1, 1, 1)
    assert len(effective) == 2


def test_reuse_keeps_an_earlier_sweeps_entries(tmp_path: Path) -> None:
    entries = [{"server": "tfserving", "qps": 1.0}, {"server": "torchserve", "qps": 2.0}]
    (tmp_path / "sweep.partial.json").write_text(json.dumps(entries))
    assert sweep.reused(tmp_path) == entries
    (tmp_path / "sweep.json").write_text(json.dumps({"entries": entries[:1], "environment": {}}))
    assert sweep.reused(tmp_path) == entries[:1]  # a finished sweep wins over a partial one


def test_tf_config_changes_only_the_swept_fields(tmp_path: Path) -> None:
    path = sweep.tf_batching(8, 2, 1, tmp_path / "batching.config")
    params = load_batching(path)
    assert params.max_execution_batch_size == 8 and params.batch_timeout_micros == 2000
    assert params.num_batch_threads == 1
    assert params.max_batch_size == 256 and params.enable_large_batch_splitting  # the row limit stays


def test_torchserve_config_matches_the_tf_one(tmp_path: Path) -> None:
    path = sweep.ts_config(8, 2, 1, tmp_path / "config.properties")
    written = config.read(path)
    for m in config.models(written).values():
        assert (m["batchSize"], m["maxBatchDelay"], m["minWorkers"], m["maxWorkers"]) == (8, 2, 1, 1)
    # Everything else is the shipped file's.
    assert config.without(written, "models") == config.without(config.read(), "models")


def _entry(server: str, batch: int, delay: int, qps: float, valid: bool = True) -> dict[str, object]:
    return {"server": server, "max_batch": batch, "delay_ms": delay, "qps": qps, "valid": valid,
            "low_p50_ms": 4.0 + delay, "low_p99_ms": 9.0 + delay}  # fmt: skip


def test_best_against_best_is_the_re_measured_one(tmp_path: Path) -> None:
    entries = [_entry("tfserving", 8, 1, 700.0), _entry("tfserving", 32, 2, 900.0), _entry("torchserve", 8, 2, 300.0)]
    best = sweep_report.best_per_server(entries)
    assert (best["tfserving"]["max_batch"], best["torchserve"]["max_batch"]) == (32, 8)
    confirmed = {
        "tfserving": {"max_batch": 32, "delay_ms": 2, "sweep_qps": 900.0, "repeats": [500.0, 420.0, 610.0],
                      "qps": 510.0, "ci95": [273.0, 747.0]},
        "torchserve": {"max_batch": 8, "delay_ms": 2, "sweep_qps": 300.0, "repeats": [280.0, 250.0, 310.0],
                       "qps": 280.0, "ci95": [205.0, 355.0]},
    }  # fmt: skip
    method = sweep_report.Method(
        slo_ms=20.0, tolerance=0.1, low_rate=100.0, executors=1, max_batch=(1, 8, 32), seconds=60.0
    )
    env = {"tfserving": "stand-in", "cpu": "test", "cores": 2, "git_commit": "abc"}
    text = sweep_report.write(tmp_path, entries, env, method, confirmed).read_text()
    assert "| tfserving | max batch 32, delay 2 ms | **510** | 273 – 747 | 500, 420, 610 | 900 |" in text
    assert "Ratio of the means, TF Serving / TorchServe: 1.82; the intervals **overlap**" in text
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["confirmed"] == confirmed and len(doc["entries"]) == 3
    assert (tmp_path / "sweep.png").stat().st_size > 0

    confirmed["tfserving"]["ci95"] = [400.0, 620.0]
    text = sweep_report.write(tmp_path, entries, env, method, confirmed).read_text()
    assert "the intervals do not overlap." in text


def test_the_gpu_grid_reaches_the_row_limit_with_delays_of_one_to_five_ms() -> None:
    grid = sweep.configurations(device="gpu")
    assert max(b for b, _ in grid) == 256 and {d for _, d in grid} == {1, 2, 5}
    assert (1, 1) in grid and (1, 5) not in grid  # batch 1 never waits: once
    assert sweep.configurations("torchserve", "gpu") == grid  # no 0 ms delay to drop there
    assert len(grid) == 1 + 3 * 3


def test_a_gpu_sweep_without_a_gpu_says_so_and_measures_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    from load_tests.runs.gpu import EXIT_NO_GPU
    from tests.conftest import REPO

    cmd = [sys.executable, "-m", "load_tests.runs.sweep", "--device", "gpu", "--out", str(tmp_path / "s")]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == EXIT_NO_GPU and "needs an NVIDIA GPU with CUDA" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "s").exists()


def test_a_best_is_picked_among_valid_configurations_only(tmp_path: Path) -> None:
    """The guard tripped at the highest draw: it is not a candidate; a server with no valid one has no best."""
    entries = [_entry("tfserving", 8, 1, 700.0), _entry("tfserving", 32, 2, 900.0, valid=False),
               _entry("torchserve", 8, 2, 300.0, valid=False)]  # fmt: skip
    assert {s: e["max_batch"] for s, e in sweep_report.best_per_server(entries).items()} == {"tfserving": 8}
    assert sweep_report.without_valid(entries) == ["torchserve"]
    assert sweep_report.sweep_verdict(entries, {}) == [
        "VERDICT: 1 of 3 configurations valid (the guard held at their QPS@SLO point)",
        "  tfserving: best max batch 8, delay 1 ms, 700 req/s in the sweep",
        "  torchserve: no valid configuration, no best",
    ]
    method = sweep_report.Method(slo_ms=10.0, tolerance=0.1, low_rate=100.0, executors=1, max_batch=(1, 8, 32),
                                 seconds=60.0)  # fmt: skip
    env = {"tfserving": "stand-in", "cpu": "test", "cores": 2, "git_commit": "abc"}
    text = sweep_report.write(tmp_path, entries, env, method, {}).read_text()
    assert "- torchserve: **none**: every configuration's point tripped the generator guard" in text
