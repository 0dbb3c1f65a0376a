"""The rollout's typed settings: what to do, to which servers, where they listen, how long to wait.

Built from a running native stack (``native``: its ``stack.json``, serving/native/run.py) or for the
compose stack (``compose``: the published ports from the same env vars as ``docker-compose.yml``,
and the container paths of the mounted artifacts). Nothing is passed between processes untyped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mnist_serving.ports import local_address, local_url
from mnist_serving.spec import GATEWAY_VERSION_REFRESH_S
from serving.native.run import NativeRun
from serving.native.settings import ServingPorts
from serving.rollout.log import Action

SERVERS = ("tfserving", "torchserve")

# ---- the waits, and why ---------------------------------------------------------------------------
# After a switch, a gateway sends new requests to the new version once it has re-read the server's
# default: every GATEWAY_VERSION_REFRESH_S (0.5 s), plus one status call (the gateway's
# GATEWAY_STATUS_TIMEOUT_S, 1 s, at most).
GATEWAY_FOLLOW_S = GATEWAY_VERSION_REFRESH_S + 1.0
# A request it sent to the old version just before that is answered, or given up, within its budget:
# the gateway's default GATEWAY_DEFAULT_TIMEOUT_MS, 2 s (a client may ask for more with
# X-Request-Timeout-Ms; raise --drain-s for such clients).
REQUEST_BUDGET_S = 2.0
# So the old version is unloaded only this long after the switch. TF Serving would also finish the
# requests an unloaded version holds; TorchServe's DELETE drops what is queued for it, so for
# TorchServe this wait is what keeps a rollout from failing requests. Measured at 100 req/s through
# the gateway on 2 cores (tests/serving/test_rollout_native.py prints it): the old version's last
# answer came 0.44-0.45 s after the switch, the new one's first at 0.47-0.50 s (docs/rollout.md).
DRAIN_S = GATEWAY_FOLLOW_S + REQUEST_BUDGET_S
# What each server does with the requests it holds when SIGTERM comes, measured natively by
# `python -m serving.native.drain` (200 one-row requests in flight, 3 repeats, 2 shared cores): none
# answers them (the TF Serving stand-in and the gateway, both uvicorn, answer only the few already
# being handled: 2-7 of 200; TorchServe 0-1 of 200; the real tensorflow_model_server ignores SIGTERM
# altogether), and each exits within this many seconds (the largest measured, rounded up). So on
# Kubernetes the preStop pause, not the server, must outlast what was sent to a pod
# (k8s/base/*.yaml; tests/deploy/test_rollout_manifests.py sizes the grace periods from these).
SIGTERM_EXIT_S = {"tfserving": 2.0, "torchserve": 2.6, "gateway": 0.4}
# A version must be loaded and ready within this: TF Serving AVAILABLE (one file-system poll, up to
# 1 s, then the load and warm-up), TorchServe's synchronous registration (a Python worker per model:
# 5-15 s on 2 shared cores) and the warm-up requests. Past it the version is refused.
LOAD_TIMEOUT_S = 120.0
# How often a wait looks again (TF Serving's status, TorchServe's workers).
POLL_S = 0.1
# The TF Serving config's base path inside the compose containers: docker-compose.yml mounts the
# host's artifacts folder read-only at /artifacts (the image's own versions stay in /models/mnist).
COMPOSE_ARTIFACTS = "/artifacts"


class Target(StrEnum):
    NATIVE = "native"
    COMPOSE = "compose"


@dataclass(frozen=True)
class Endpoints:
    tfserving_rest: str
    tfserving_grpc: str
    torchserve_inference: str
    torchserve_management: str
    gateway: str | None  # None: no gateway (a canary split needs one)

    @classmethod
    def of(cls, ports: ServingPorts, with_gateway: bool = True) -> Endpoints:
        return cls(
            local_url(ports.tfserving_rest),
            local_address(ports.tfserving_grpc),
            local_url(ports.torchserve_inference),
            local_url(ports.torchserve_management),
            local_url(ports.gateway) if with_gateway else None,
        )


@dataclass(frozen=True)
class RolloutSettings:
    action: Action
    version: int | None  # the version to roll to (ROLL, CANARY); None for PROMOTE and ROLLBACK
    target: Target
    endpoints: Endpoints
    artifacts: Path  # on this machine: the manifest, its held-out check, the TorchServe archives
    tf_base_path: str  # TF Serving's model base path as the server sees it
    servers: tuple[str, ...] = SERVERS
    canary_percent: float | None = None
    # Natively: the files a restarted server reads, rewritten so it comes back with the version rolled
    # to, and TorchServe's model store (an archive missing there is built into it).
    tf_model_config: Path | None = None
    ts_config: Path | None = None
    ts_model_store: Path | None = None
    api_key: str | None = None  # sent as X-API-Key to the gateway's canary endpoints
    drain_s: float = DRAIN_S
    load_timeout_s: float = LOAD_TIMEOUT_S
    follow_s: float = GATEWAY_FOLLOW_S

    def __post_init__(self) -> None:
        if self.action in (Action.ROLL, Action.CANARY) and self.version is None:
            raise ValueError(f"{self.action} needs a version")
        if self.action is Action.CANARY and not (self.canary_percent is not None and 0 < self.canary_percent < 100):
            raise ValueError("a canary needs a share of traffic between 0 and 100 %")
        if not self.servers or set(self.servers) - set(SERVERS):
            raise ValueError(f"servers must be some of {', '.join(SERVERS)}; got {', '.join(self.servers) or 'none'}")


def api_key_from_env() -> str | None:
    """The first key of GATEWAY_API_KEYS (``name:key`` or a bare key), as the gateway reads them."""
    entries = [e.strip() for e in os.environ.get("GATEWAY_API_KEYS", "").split(",") if e.strip()]
    return entries[0].rpartition(":")[2] if entries else None


def native(
    run: NativeRun,
    action: Action,
    version: int | None,
    servers: tuple[str, ...] = SERVERS,
    canary_percent: float | None = None,
    drain_s: float = DRAIN_S,
) -> RolloutSettings:
    """For the native stack described by ``run`` (its ports, artifacts and files)."""
    return RolloutSettings(
        action=action,
        version=version,
        target=Target.NATIVE,
        endpoints=Endpoints.of(run.ports, run.with_gateway),
        artifacts=run.artifacts,
        tf_base_path=str(run.tf_model_base),
        servers=tuple(s for s in servers if s in run.servers),
        canary_percent=canary_percent,
        tf_model_config=run.tf_model_config,
        ts_config=run.ts_config,
        ts_model_store=run.ts_model_store,
        api_key=api_key_from_env(),
        drain_s=drain_s,
    )


def compose(
    artifacts: Path,
    action: Action,
    version: int | None,
    servers: tuple[str, ...] = SERVERS,
    canary_percent: float | None = None,
    drain_s: float = DRAIN_S,
    ports: ServingPorts | None = None,
) -> RolloutSettings:
    """For the compose stack: its published ports (the same env vars, GATEWAY_PORT ...), the
    artifacts folder it mounts (``ARTIFACTS``, default ./artifacts) seen at /artifacts inside."""
    return RolloutSettings(
        action=action,
        version=version,
        target=Target.COMPOSE,
        endpoints=Endpoints.of(ports or ServingPorts.from_env()),
        artifacts=artifacts,
        tf_base_path=f"{COMPOSE_ARTIFACTS}/tfserving/mnist",
        servers=servers,
        canary_percent=canary_percent,
        api_key=api_key_from_env(),
        drain_s=drain_s,
    )
