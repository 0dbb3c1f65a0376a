"""TensorFlow Serving natively: ``tensorflow_model_server`` when it is on PATH, else the stand-in.
The command line and config files come from their one owner, serving/tfserving/config.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx

from mnist_serving.ports import local_url
from mnist_serving.spec import STABLE_LABEL, TF_MODEL_NAME
from serving.environments import Environment
from serving.native.process import ManagedProcess
from serving.native.settings import SERVING, ServingPorts
from serving.tfserving import config
from serving.torchserve.build_mar import latest_version

REAL_BINARY = config.BINARY


def implementation() -> str:
    return "real" if shutil.which(REAL_BINARY) else "standin"


def model_config_path(run_dir: Path) -> Path:
    """The run's models.config: what the server reads at start (a rollout rewrites it)."""
    return run_dir / "models.config"


def model_base(artifacts: Path) -> Path:
    return artifacts.resolve() / "tfserving" / TF_MODEL_NAME


def launcher(
    artifacts: Path, run_dir: Path, ports: ServingPorts, batching: Path | None = None, version: int | None = None
) -> ManagedProcess:
    """Serves ``version`` (default: the manifest's newest good one), labelled ``stable``, and no other
    (a `specific` policy: a version trained meanwhile, or a bad one, is loaded only by a rollout).
    ``batching``: another BatchingParameters file (the load sweep's); default the shared one."""
    served = version or latest_version(artifacts)
    models = config.write_model_config(
        model_base(artifacts), model_config_path(run_dir), versions=[served], labels={STABLE_LABEL: served}
    )
    flags = config.argv(
        Environment.NATIVE,
        grpc_port=ports.tfserving_grpc,
        rest_port=ports.tfserving_rest,
        model_config=str(models),
        batching_file=str(batching or config.CONFIG_DIR / "batching.config"),
        monitoring=str(config.CONFIG_DIR / "monitoring.config"),
    )
    binary = shutil.which(REAL_BINARY)
    argv = [binary, *flags] if binary else [sys.executable, "-m", "serving.tfserving_standin", *flags]
    return ManagedProcess("tfserving", argv, run_dir / "tfserving.log", cwd=SERVING.parent)


def live(ports: ServingPorts, timeout: float) -> bool:
    """Liveness: the model status GET gets an answer at all (what it says is readiness's business)."""
    httpx.get(local_url(ports.tfserving_rest, config.STATUS_PATH), timeout=timeout)
    return True


def ready(ports: ServingPorts) -> bool:
    """Every loaded version AVAILABLE: the rule of serving/tfserving/config.py's READY_COMMAND."""
    r = httpx.get(local_url(ports.tfserving_rest, config.STATUS_PATH), timeout=2)
    return r.status_code == 200 and config.status_is_ready(r.json())
