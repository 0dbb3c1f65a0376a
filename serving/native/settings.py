"""Where the native servers listen and what they serve; each value can come from an env var."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from mnist_serving import ports

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class ServingPorts:
    tfserving_grpc: int = ports.TFSERVING_GRPC
    tfserving_rest: int = ports.TFSERVING_REST
    torchserve_inference: int = ports.TORCHSERVE_INFERENCE
    torchserve_management: int = ports.TORCHSERVE_MANAGEMENT
    torchserve_metrics: int = ports.TORCHSERVE_METRICS
    torchserve_grpc_inference: int = ports.TORCHSERVE_GRPC_INFERENCE
    torchserve_grpc_management: int = ports.TORCHSERVE_GRPC_MANAGEMENT
    gateway: int = ports.GATEWAY
    gateway_grpc: int = ports.GATEWAY_GRPC  # the gateway's Open Inference Protocol over gRPC

    @classmethod
    def free(cls) -> ServingPorts:
        """Kernel-chosen free ports for every service (tests, benchmarks)."""
        from serving.native.process import free_ports

        return cls(*free_ports(len(fields(cls))))

    @classmethod
    def from_env(cls) -> ServingPorts:
        """``TFSERVING_REST_PORT=9501`` and so on: the field name in upper case plus ``_PORT``."""
        return cls(**{f.name: _env_int(f"{f.name.upper()}_PORT", getattr(cls(), f.name)) for f in fields(cls)})

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
