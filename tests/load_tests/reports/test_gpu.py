"""The GPU report renders from a run's data files (the committed H200 run here, and a typed capacity
run), its findings computed from them, and the one GPU command stops with a clear message where
there is no CUDA."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from load_tests.reports import gpu
from tests.conftest import REPO

H200 = REPO / "docs" / "load-report-gpu-h200"


def test_the_committed_h200_report_renders_from_its_data(tmp_path: Path) -> None:
    folder = tmp_path / "h200"
    shutil.copytree(H200, folder)
    (folder / "report.md").unlink()
    text = gpu.write(folder).read_text()
    for needle in ("NVIDIA H200", "driver 580.159.04", "CUDA 13.0", "TF Serving: neither the real server",
                   "| torchscript on cuda:0 | 83 | 97 | 153 |", "from 256 rows per forward pass; at 32 rows it still loses",
                   "| TorchServe mnist | 3.62 / 130.13 (36×) | 4.27 / 7.98 (2×) |", "2.4e-07", "inproc.png",
                   # "never met p99 ≤ 5 ms", shown from the log's points, and what they cannot show:
                   "`capacity-slo5.log` (p99 ≤ 5 ms): 0 of 15 points met the SLO, at 16–500 req/s",
                   "the lowest p99 less its point's send-lag p99 is 4.86 ms, within the SLO",
                   "| 62 | 4.69 | 6.20 | FAIL | send lag p99 1.34 ms", "QPS@SLO per repeat: 1,037, 844",
                   "median 3 ms server-side per request", "11.6 log lines per request"):  # fmt: skip
        assert needle in text, needle
    assert (folder / "inproc.png").read_bytes().startswith(b"\x89PNG")
    assert text == (H200 / "report.md").read_text()  # the committed report is what the data renders


def test_no_finding_is_written_by_hand() -> None:
    prov = __import__("json").loads((H200 / "provenance.json").read_text())
    assert "findings" not in prov and "capacity_note" not in prov  # the report computes them
    assert not __import__("re").search(r"\d ms", prov["points_note"])  # a note on how it was measured, no figures


def test_a_typed_capacity_run_renders_in_the_gpu_report(tmp_path: Path) -> None:
    from load_tests import results
    from tests.load_tests.synthetic import capacity_run, simulate

    shutil.copy(H200 / "provenance.json", tmp_path / "provenance.json")
    run = capacity_run(simulate(max_blocks=4, seed=2)[0])
    (tmp_path / "capacity").mkdir()
    results.write(run, tmp_path / "capacity")
    text = gpu.write(tmp_path).read_text()
    tf = run.targets["tfserving"]
    assert tf.qps_at_slo.estimate is not None and tf.qps_at_slo.ci95 is not None
    assert f"tfserving: QPS@SLO {tf.qps_at_slo.estimate:,.0f} req/s, 95 % CI {tf.qps_at_slo.ci95[0]:,.0f}" in text
    assert "## Capacity (the project's block runner" in text and "holds" in text
    assert "## Served, at fixed open-loop rates" in text and "| tfserving | " in text  # its points at the fixed rate
    r = tf.ratios
    assert r is not None and r.p50.estimate is not None
    assert f"tfserving's p50 is {r.p50.estimate:.2f}× its floor's (floor-savedmodel-batching" in text


def test_the_crossover_is_where_the_gpu_first_beats_every_cpu_runtime() -> None:
    table = gpu.inproc_table({"torchscript cuda:0 b1": 80, "torchscript cuda:0 b32": 90, "torchscript cuda:0 b256": 150,
                              "torchscript cpu b1": 20, "torchscript cpu b32": 95, "torchscript cpu b256": 430,
                              "onnx cpu b1": 10, "onnx cpu b32": 50, "onnx cpu b256": 330})  # fmt: skip
    assert gpu.gpu_wins_from(table) == {"torchscript cuda:0": (32, 256)}  # onnx wins at 32 still
    assert gpu.gpu_wins_from(gpu.inproc_table({"t cuda:0 b1": 9, "t cpu b1": 1})) == {"t cuda:0": (1, None)}


def test_the_gpu_command_says_it_needs_cuda_and_measures_nothing(tmp_path: Path) -> None:
    from load_tests.runs.gpu import EXIT_NO_GPU

    cmd = [sys.executable, "-m", "load_tests.runs.gpu", "--out", str(tmp_path / "g")]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == EXIT_NO_GPU, r.stdout + r.stderr
    assert "make gpu-report needs an NVIDIA GPU with CUDA" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "g").exists()
