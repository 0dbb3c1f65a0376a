"""The FastAPI gateway as a native process, pointed at this run's model servers."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from mnist_serving.ports import local_address, local_url
from serving.native.process import ManagedProcess
from serving.native.settings import REPO, ServingPorts


def launcher(
    run_dir: Path, ports: ServingPorts, name: str = "gateway", settings: dict[str, str] | None = None
) -> ManagedProcess:
    """``settings``: more GATEWAY_* variables (a second gateway with other limits, in tests)."""
    env = {
        "GATEWAY_PORT": str(ports.gateway),
        "GATEWAY_GRPC_PORT": str(ports.gateway_grpc),
        "GATEWAY_TFSERVING_URL": local_url(ports.tfserving_rest),
        "GATEWAY_TFSERVING_GRPC_ADDRESS": local_address(ports.tfserving_grpc),
        "GATEWAY_TORCHSERVE_URL": local_url(ports.torchserve_inference),
        "GATEWAY_TORCHSERVE_MANAGEMENT_URL": local_url(ports.torchserve_management),
        "GATEWAY_TORCHSERVE_GRPC_ADDRESS": local_address(ports.torchserve_grpc_inference),
        **(settings or {}),
    }
    return ManagedProcess(name, [sys.executable, "-m", "gateway.app"], run_dir / f"{name}.log", env=env, cwd=REPO)


def ready(ports: ServingPorts) -> bool:
    """At least one backend ready behind it (start-up)."""
    return httpx.get(local_url(ports.gateway, "/readyz"), timeout=2).status_code == 200


def live(ports: ServingPorts, timeout: float = 2.0) -> bool:
    """Liveness, and the supervisor's "started" (its readiness depends on backends the supervisor
    restarts on their own): the gateway answers ``/healthz`` at all (an overloaded one that sheds
    it with a 503 still answers)."""
    httpx.get(local_url(ports.gateway, "/healthz"), timeout=timeout)
    return True
