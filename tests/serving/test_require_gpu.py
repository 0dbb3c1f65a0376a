"""REQUIRE_GPU=1 (set in every GPU deployment): a model server that would compute on the CPU refuses
to start, with a message saying why, instead of holding a GPU and serving from the CPU. This machine
has no GPU, so here both servers must refuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mnist_serving.spec import REQUIRE_GPU_ENV
from serving.native.process import free_ports
from tests.conftest import REPO
from training.train import artifact_paths


def _context(path: Path):
    from ts.context import Context  # TorchServe's own worker context

    manifest = {"model": {"serializedFile": path.name}}
    return Context(path.stem, str(path.parent), manifest, batch_size=32, gpu=None, mms_version="0.12.0")


@pytest.mark.parametrize("kind", ["torchscript", "onnx"])
def test_the_handler_refuses_the_cpu_when_a_gpu_is_required(
    artifacts: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.torchserve.mnist_handler import GPURequired, MnistHandler

    path = artifact_paths(artifacts, 1)[kind]
    monkeypatch.setenv(REQUIRE_GPU_ENV, "1")
    with pytest.raises(GPURequired, match="would run on the CPU"):
        MnistHandler().initialize(_context(path))
    monkeypatch.delenv(REQUIRE_GPU_ENV)
    handler = MnistHandler()
    handler.initialize(_context(path))  # without it the CPU is fine, and the model is warm
    assert handler.initialized and handler.device in ("cpu", "CPUExecutionProvider")


def test_the_tf_stand_in_refuses_to_start_without_a_gpu(artifacts: Path) -> None:
    base = artifact_paths(artifacts, 1)["savedmodel"].parent
    grpc_port, rest_port = free_ports(2)
    cmd = [sys.executable, "-m", "serving.tfserving_standin", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
           "--model_name=mnist", f"--model_base_path={base}"]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env={**_env(), REQUIRE_GPU_ENV: "1"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "REQUIRE_GPU=1 but TensorFlow sees no GPU" in r.stderr and "refusing to serve on the CPU" in r.stderr


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
