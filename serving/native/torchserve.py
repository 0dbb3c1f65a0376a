"""TorchServe 0.12.0 natively, with the shared config.properties and the ports of this run."""

from __future__ import annotations

from pathlib import Path

import httpx

from mnist_serving.spec import ONNX_MODEL_NAME, TORCH_MODEL_NAME
from serving.native.process import ManagedProcess
from serving.native.settings import ServingPorts
from serving.torchserve.build_mar import build
from serving.torchserve.config import CONFIG, torchserve_argv, write_config

MODELS = (TORCH_MODEL_NAME, ONNX_MODEL_NAME)


def launcher(
    artifacts: Path, run_dir: Path, ports: ServingPorts, version: int | None = None, config_source: Path | None = None
) -> ManagedProcess:
    """``config_source``: another config.properties (the load sweep's); default the shared one."""
    store = run_dir / "model-store"
    build(artifacts, store, version)
    built_version = int((store / "VERSION").read_text())
    config = write_config(run_dir / "config.properties", store, built_version, config_source or CONFIG)
    tmp = run_dir / "tmp"  # TorchServe's pid file and unpacked archives stay in the run folder
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{ports.torchserve_inference}",
        "TS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{ports.torchserve_management}",
        "TS_METRICS_ADDRESS": f"http://127.0.0.1:{ports.torchserve_metrics}",
        "TS_GRPC_INFERENCE_PORT": str(ports.torchserve_grpc_inference),
        "TS_GRPC_MANAGEMENT_PORT": str(ports.torchserve_grpc_management),
        "OMP_NUM_THREADS": "1",  # one worker per model on a small CPU; more threads only contend
        "TMPDIR": str(tmp),
        "TEMP": str(tmp),
        "LOG_LOCATION": str(run_dir / "torchserve-logs"),
        "METRICS_LOCATION": str(run_dir / "torchserve-logs"),
    }
    argv = torchserve_argv(config, store)
    return ManagedProcess("torchserve", argv, run_dir / "torchserve.log", env=env, cwd=run_dir)


def ready(ports: ServingPorts) -> bool:
    """Every model has a READY worker (``/ping`` says Healthy before workers are up)."""
    for name in MODELS:
        r = httpx.get(f"http://127.0.0.1:{ports.torchserve_management}/models/{name}", timeout=2)
        if r.status_code != 200:
            return False
        workers = [w for entry in r.json() for w in entry.get("workers", [])]
        if not workers or any(w.get("status") != "READY" for w in workers):
            return False
    return True
