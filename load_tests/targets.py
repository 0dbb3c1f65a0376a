"""Every load-test target: which user class, which host, which path, which payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mnist_serving import ports

Payload = Literal["json", "png"]


@dataclass(frozen=True)
class Target:
    name: str  # also the Locust request name
    user_class: str
    host_env: str  # env var with the base URL; the default is the native address
    default_host: str
    path: str
    payload: Payload = "json"
    compare: bool = False
    backend: str | None = None  # which backend serves it (for the comparison section)
    via_gateway: bool = False


TF = ("TFSERVING_URL", f"http://127.0.0.1:{ports.TFSERVING_REST}")
TS = ("TORCHSERVE_URL", f"http://127.0.0.1:{ports.TORCHSERVE_INFERENCE}")
GW = ("GATEWAY_URL", f"http://127.0.0.1:{ports.GATEWAY}")

TARGETS = [
    Target("tfserving", "TFServingUser", *TF, "/v1/models/mnist:predict", backend="tfserving"),
    Target("torchserve", "TorchServeUser", *TS, "/predictions/mnist", backend="torchserve"),
    Target("torchserve-onnx", "TorchServeOnnxUser", *TS, "/predictions/mnist_onnx", backend="torchserve-onnx"),
    Target(
        "gateway-tfserving",
        "GatewayTFServingUser",
        *GW,
        "/v1/predict?backend=tfserving",
        backend="tfserving",
        via_gateway=True,
    ),
    Target(
        "gateway-torchserve",
        "GatewayTorchServeUser",
        *GW,
        "/v1/predict?backend=torchserve",
        backend="torchserve",
        via_gateway=True,
    ),
    Target(
        "gateway-torchserve-onnx",
        "GatewayTorchServeOnnxUser",
        *GW,
        "/v1/predict?backend=torchserve-onnx",
        backend="torchserve-onnx",
        via_gateway=True,
    ),
    Target("gateway-image", "GatewayImageUser", *GW, "/v1/predict/image?backend=tfserving", payload="png"),
    Target("gateway-compare", "GatewayCompareUser", *GW, "/v1/compare", compare=True),
]
BY_NAME = {t.name: t for t in TARGETS}
