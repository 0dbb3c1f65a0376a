"""The batching sweep's configurations: the grid, and the two servers' configs rewritten alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

from load_tests import sweep
from serving.tfserving_standin.configs import load_batching


def test_the_grid_skips_delays_for_batch_one() -> None:
    grid = sweep.configurations()
    assert (1, 0) in grid and (1, 5) not in grid
    assert {(b, d) for b in (8, 32) for d in (0, 1, 2, 5)} <= set(grid)
    assert len(grid) == 9


def test_tf_config_changes_only_the_swept_fields(tmp_path: Path) -> None:
    path = sweep.tf_batching(8, 2, 1, tmp_path / "batching.config")
    params = load_batching(path)
    assert params.max_execution_batch_size == 8 and params.batch_timeout_micros == 2000
    assert params.num_batch_threads == 1
    assert params.max_batch_size == 256 and params.enable_large_batch_splitting  # the row limit stays


def test_torchserve_config_matches_the_tf_one(tmp_path: Path) -> None:
    path = sweep.ts_config(8, 2, 1, tmp_path / "config.properties")
    text = path.read_text()
    models = json.loads(next(ln for ln in text.splitlines() if ln.startswith("models=")).partition("=")[2])
    for versions in models.values():
        (m,) = versions.values()
        assert (m["batchSize"], m["maxBatchDelay"], m["minWorkers"], m["maxWorkers"]) == (8, 2, 1, 1)
    # Everything else is the shipped file's.
    shipped = (sweep.REPO / "serving/torchserve/config.properties").read_text()
    for key in ("inference_address", "disable_token_authorization", "load_models"):
        assert re.search(rf"^{key}=.*$", shipped, re.M).group(0) in text  # type: ignore[union-attr]
