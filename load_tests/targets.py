"""Every load-test target: which user classes, which host, which path or gRPC method, which payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mnist_serving import ports
from mnist_serving.spec import TF_PREDICT_METHOD, TORCHSERVE_PREDICTIONS_METHOD

Payload = Literal["json", "png", "tensor"]
Protocol = Literal["rest", "grpc"]


@dataclass(frozen=True)
class Target:
    name: str  # also the Locust request name
    user_class: str  # closed-loop user (concurrent users, no wait); the open-loop one is OpenLoop<user_class>
    host_env: str  # env var with the base URL (gRPC: host:port); the default is the native address
    default_host: str
    path: str  # URL path, or the gRPC method
    payload: Payload = "json"
    compare: bool = False
    backend: str | None = None  # which backend serves it (for the comparison section)
    via_gateway: bool = False
    protocol: Protocol = "rest"
    model: str = "mnist"  # gRPC: the model name in the request

    @property
    def open_user_class(self) -> str:
        return f"OpenLoop{self.user_class}"

    @property
    def server(self) -> str | None:
        """The model server behind it (tfserving or torchserve), for its metrics and processes."""
        return self.backend.split("-")[0] if self.backend else None


TF = ("TFSERVING_URL", f"http://127.0.0.1:{ports.TFSERVING_REST}")
TS = ("TORCHSERVE_URL", f"http://127.0.0.1:{ports.TORCHSERVE_INFERENCE}")
GW = ("GATEWAY_URL", f"http://127.0.0.1:{ports.GATEWAY}")
TF_GRPC = ("TFSERVING_GRPC_ADDRESS", f"127.0.0.1:{ports.TFSERVING_GRPC}")
TS_GRPC = ("TORCHSERVE_GRPC_ADDRESS", f"127.0.0.1:{ports.TORCHSERVE_GRPC_INFERENCE}")

TARGETS = [
    Target("tfserving", "TFServingUser", *TF, "/v1/models/mnist:predict", backend="tfserving"),
    Target("torchserve", "TorchServeUser", *TS, "/predictions/mnist", backend="torchserve"),
    Target("torchserve-onnx", "TorchServeOnnxUser", *TS, "/predictions/mnist_onnx", backend="torchserve-onnx"),
    Target(
        "tfserving-grpc",
        "TFServingGrpcUser",
        *TF_GRPC,
        TF_PREDICT_METHOD,
        payload="tensor",
        backend="tfserving",
        protocol="grpc",
    ),
    Target(
        "torchserve-grpc",
        "TorchServeGrpcUser",
        *TS_GRPC,
        TORCHSERVE_PREDICTIONS_METHOD,
        payload="tensor",
        backend="torchserve",
        protocol="grpc",
    ),
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
    # The load generator's calibration: load_tests/trivial_server.py answers at once.
    Target("trivial", "TrivialUser", "TRIVIAL_URL", "http://127.0.0.1:8099", "/"),
]
BY_NAME = {t.name: t for t in TARGETS}
