"""TorchServe 0.12.0 natively, with the shared config.properties and the ports of this run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from mnist_serving.ports import local_url
from serving.environments import TORCHSERVE, Environment
from serving.native.process import ManagedProcess
from serving.native.settings import ServingPorts
from serving.torchserve.build_mar import build_versioned, latest_version
from serving.torchserve.config import CONFIG, LOG_CONFIG, torchserve_argv, write_config
from serving.torchserve.ready import MODELS, all_ready, warm_frontend
from training.manifest import Manifest


def launcher(
    artifacts: Path,
    run_dir: Path,
    ports: ServingPorts,
    version: int | None = None,
    config_source: Path | None = None,
    log_config: Path | None = LOG_CONFIG,
    env_overrides: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """Serves ``version`` (default: the manifest's newest good one) from a model store of this run
    holding every good version's archives (``mnist-vN.mar``, built now with the current handler), so
    a rollout registers any of them beside it (serving/rollout builds one trained later into it).
    ``config_source``: another config.properties (the load sweep's); default the shared one.
    ``log_config`` None: TorchServe's own logging (the tuning benchmark's "before").
    ``env_overrides``: on top of the native environment's settings (serving/environments.py)."""
    store = model_store(run_dir)
    served = version or latest_version(artifacts)
    for v in sorted({*Manifest.load(artifacts).good_versions, served}):
        build_versioned(artifacts, store, v)
    config = write_config(config_path(run_dir), store, served, config_source or CONFIG)
    tmp = run_dir / "tmp"  # TorchServe's pid file and unpacked archives stay in the run folder
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "TS_INFERENCE_ADDRESS": local_url(ports.torchserve_inference),
        "TS_MANAGEMENT_ADDRESS": local_url(ports.torchserve_management),
        "TS_METRICS_ADDRESS": local_url(ports.torchserve_metrics),
        "TS_GRPC_INFERENCE_PORT": str(ports.torchserve_grpc_inference),
        "TS_GRPC_MANAGEMENT_PORT": str(ports.torchserve_grpc_management),
        **TORCHSERVE[Environment.NATIVE].env,
        **(env_overrides or {}),
        "TMPDIR": str(tmp),
        "TEMP": str(tmp),
        "LOG_LOCATION": str(run_dir / "torchserve-logs"),
        "METRICS_LOCATION": str(run_dir / "torchserve-logs"),
    }
    argv = torchserve_argv(config, store, log_config)
    return ManagedProcess("torchserve", argv, run_dir / "torchserve.log", env=env, cwd=run_dir)


def model_store(run_dir: Path) -> Path:
    return run_dir / "model-store"


def config_path(run_dir: Path) -> Path:
    """The run's config.properties: what a restart loads (a rollout rewrites it)."""
    return run_dir / "config.properties"


def describe(ports: ServingPorts, name: str, timeout: float = 2.0) -> list[dict[str, Any]] | None:
    """The management API's description of model ``name`` (one entry per version); None if not there."""
    r = httpx.get(local_url(ports.torchserve_management, f"/models/{name}"), timeout=timeout)
    return r.json() if r.status_code == 200 else None


def ready(ports: ServingPorts) -> bool:
    """Every worker of every model READY: the one rule of serving/torchserve/ready.py."""
    return all_ready(lambda name: describe(ports, name))


def live(ports: ServingPorts, timeout: float) -> bool:
    """Liveness: the frontend answers ``/ping`` on the inference port, whatever it says (it says
    Unhealthy while TorchServe replaces a worker, which it does by itself)."""
    httpx.get(local_url(ports.torchserve_inference, "/ping"), timeout=timeout)
    return True


def warm(ports: ServingPorts) -> None:
    """Warm TorchServe's own request path (every worker is READY already): serving/torchserve/ready.py."""
    warm_frontend(local_url(ports.torchserve_inference))


def batching(ports: ServingPorts) -> dict[str, dict[str, int]]:
    """What each model really runs with, which can differ from its config (a 0 ms delay becomes 100)."""
    out = {}
    for name in MODELS:
        entries = describe(ports, name, timeout=10)
        if not entries:
            raise RuntimeError(f"TorchServe does not serve {name}")
        (d,) = entries
        out[name] = {k: int(d[k]) for k in ("batchSize", "maxBatchDelay", "minWorkers", "maxWorkers")}
    return out
