"""The GPU report renders from a run's data files (the committed H200 run here), and the one GPU
command stops with a clear message where there is no CUDA."""

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
                   "| torchscript on cuda:0 | 83 | 97 | 153 |", "at **256 rows**", "at 32 rows it still loses",
                   "| TorchServe mnist | 3.62 / 130.13 | 4.27 / 7.98 |", "2.4e-07", "inproc.png"):  # fmt: skip
        assert needle in text, needle
    assert (folder / "inproc.png").read_bytes().startswith(b"\x89PNG")
    assert text == (H200 / "report.md").read_text()  # the committed report is what the data renders


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
