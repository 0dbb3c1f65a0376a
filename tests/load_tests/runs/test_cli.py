"""The load tools' command lines: the target list, and the bench line's exact shape."""

from __future__ import annotations

import subprocess
import sys

from load_tests.runs.calibration import line
from load_tests.targets import TARGETS
from tests.conftest import REPO


def test_list_targets_prints_every_target_one_per_line() -> None:
    cmd = [sys.executable, "-m", "load_tests.runs.capacity", "--list-targets"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == [t.name for t in TARGETS]
    assert {"floor-torchscript", "floor-onnx", "floor-savedmodel", "tfserving", "gateway-torchserve"} <= set(
        r.stdout.split()
    )


def test_the_bench_line_has_the_promised_shape() -> None:
    s = {"rate": 1000.0, "send_lag_p50_ms": 0.031, "send_lag_p99_ms": 0.412, "generator_cpu_share": 0.38,
         "processes": 1}  # fmt: skip
    assert line(s) == "rate 1000 req/s: send lag p50 0.031 ms p99 0.412 ms, generator 38 % of a core, 1 process(es)"
    unknown = {**s, "send_lag_p99_ms": None, "generator_cpu_share": None}  # a rate that recorded nothing
    assert line(unknown) == "rate 1000 req/s: send lag p50 0.031 ms p99 – ms, generator – % of a core, 1 process(es)"
