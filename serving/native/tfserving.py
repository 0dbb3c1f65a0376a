"""TensorFlow Serving natively: ``tensorflow_model_server`` when it is on PATH, else the stand-in."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import httpx

from mnist_serving.ports import local_url
from mnist_serving.spec import TF_MODEL_NAME
from serving.native.process import ManagedProcess
from serving.native.settings import SERVING, ServingPorts

CONFIG_DIR = SERVING / "tfserving"
REAL_BINARY = "tensorflow_model_server"


def implementation() -> str:
    return "real" if shutil.which(REAL_BINARY) else "standin"


def write_model_config(artifacts: Path, run_dir: Path) -> Path:
    """The shared models.config with base_path pointed at this checkout's artifacts."""
    text = (CONFIG_DIR / "models.config").read_text()
    base = (artifacts / "tfserving" / TF_MODEL_NAME).resolve()
    text, n = re.subn(r'base_path:\s*"[^"]*"', f'base_path: "{base}"', text)
    if n != 1:
        raise ValueError("models.config must have exactly one base_path")
    out = run_dir / "models.config"
    out.write_text(text)
    return out


def launcher(artifacts: Path, run_dir: Path, ports: ServingPorts, batching: Path | None = None) -> ManagedProcess:
    """``batching``: another BatchingParameters file (the load sweep's); default the shared one."""
    flags = [
        f"--port={ports.tfserving_grpc}",
        f"--rest_api_port={ports.tfserving_rest}",
        f"--model_config_file={write_model_config(artifacts, run_dir)}",
        "--enable_batching=true",
        f"--batching_parameters_file={batching or CONFIG_DIR / 'batching.config'}",
        f"--monitoring_config_file={CONFIG_DIR / 'monitoring.config'}",
    ]
    binary = shutil.which(REAL_BINARY)
    argv = [binary, *flags] if binary else [sys.executable, "-m", "serving.tfserving_standin", *flags]
    return ManagedProcess("tfserving", argv, run_dir / "tfserving.log", cwd=SERVING.parent)


def ready(ports: ServingPorts) -> bool:
    r = httpx.get(local_url(ports.tfserving_rest, f"/v1/models/{TF_MODEL_NAME}"), timeout=2)
    states = [s["state"] for s in r.json().get("model_version_status", [])]
    return r.status_code == 200 and bool(states) and all(s == "AVAILABLE" for s in states)
