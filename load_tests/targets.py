"""Every load-test target (which user classes, host, path or gRPC method, payload) and the one
``Endpoints`` type: where each target's host and each server's metrics are in a given run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mnist_serving import ports
from mnist_serving.ports import local_address, local_url
from mnist_serving.spec import (
    ONNX_MODEL_NAME,
    TF_MODEL_NAME,
    TF_PREDICT_METHOD,
    TORCH_MODEL_NAME,
    TORCHSERVE_PREDICTIONS_METHOD,
)

Payload = Literal["json", "png", "tensor"]
Protocol = Literal["rest", "grpc"]
FLOOR_PATH = "/predict"  # load_tests/servers/floor.py: the same JSON contract as the servers' REST routes


@dataclass(frozen=True)
class Target:
    name: str  # also the Locust request name
    user_class: str  # closed-loop user (concurrent users, no wait); the open-loop one is OpenLoop<user_class>
    host_env: str  # env var with the base URL (gRPC: host:port); the default is the native address
    default_host: str
    path: str  # URL path, or the gRPC method
    payload: Payload = "json"
    compare: bool = False
    backend: str | None = None  # which backend serves it (tfserving, torchserve, torchserve-onnx, floor-*)
    via_gateway: bool = False
    protocol: Protocol = "rest"
    model: str = TF_MODEL_NAME  # gRPC: the model name in the request
    floor: str | None = None  # the floor target: the same model behind the leanest server

    @property
    def open_user_class(self) -> str:
        return f"OpenLoop{self.user_class}"

    @property
    def server(self) -> str | None:
        """The process behind it (tfserving, torchserve or floor-<kind>), for its metrics and CPU."""
        if not self.backend:
            return None
        return self.backend if self.backend.startswith("floor-") else self.backend.split("-")[0]


TF = ("TFSERVING_URL", local_url(ports.TFSERVING_REST))
TS = ("TORCHSERVE_URL", local_url(ports.TORCHSERVE_INFERENCE))
GW = ("GATEWAY_URL", local_url(ports.GATEWAY))
TF_GRPC = ("TFSERVING_GRPC_ADDRESS", local_address(ports.TFSERVING_GRPC))
TS_GRPC = ("TORCHSERVE_GRPC_ADDRESS", local_address(ports.TORCHSERVE_GRPC_INFERENCE))
TF_FLOOR, TS_FLOOR, ONNX_FLOOR = "floor-savedmodel", "floor-torchscript", "floor-onnx"
# Floor kind (load_tests/servers/floor.py) -> its closed-loop user class, host env var and default port.
FLOORS = {
    "torchscript": ("FloorTorchScriptUser", "FLOOR_TORCHSCRIPT_URL", ports.FLOOR_TORCHSCRIPT),
    "onnx": ("FloorOnnxUser", "FLOOR_ONNX_URL", ports.FLOOR_ONNX),
    "savedmodel": ("FloorSavedModelUser", "FLOOR_SAVEDMODEL_URL", ports.FLOOR_SAVEDMODEL),
}

TARGETS = [
    Target("tfserving", "TFServingUser", *TF, f"/v1/models/{TF_MODEL_NAME}:predict", backend="tfserving",
           floor=TF_FLOOR),
    Target("torchserve", "TorchServeUser", *TS, f"/predictions/{TORCH_MODEL_NAME}", backend="torchserve",
           floor=TS_FLOOR),
    Target("torchserve-onnx", "TorchServeOnnxUser", *TS, f"/predictions/{ONNX_MODEL_NAME}",
           backend="torchserve-onnx", floor=ONNX_FLOOR),
    Target("tfserving-grpc", "TFServingGrpcUser", *TF_GRPC, TF_PREDICT_METHOD, payload="tensor",
           backend="tfserving", protocol="grpc", floor=TF_FLOOR),
    Target("torchserve-grpc", "TorchServeGrpcUser", *TS_GRPC, TORCHSERVE_PREDICTIONS_METHOD, payload="tensor",
           backend="torchserve", protocol="grpc", floor=TS_FLOOR),
    Target("gateway-tfserving", "GatewayTFServingUser", *GW, "/v1/predict?backend=tfserving", backend="tfserving",
           via_gateway=True, floor=TF_FLOOR),
    Target("gateway-torchserve", "GatewayTorchServeUser", *GW, "/v1/predict?backend=torchserve",
           backend="torchserve", via_gateway=True, floor=TS_FLOOR),
    Target("gateway-torchserve-onnx", "GatewayTorchServeOnnxUser", *GW, "/v1/predict?backend=torchserve-onnx",
           backend="torchserve-onnx", via_gateway=True, floor=ONNX_FLOOR),
    # `auto`: the gateway's routing policy with fallback (the chaos run's target); backend=None: it may be either.
    Target("gateway-auto", "GatewayAutoUser", *GW, "/v1/predict?backend=auto", via_gateway=True),
    Target("gateway-image", "GatewayImageUser", *GW, "/v1/predict/image?backend=tfserving", payload="png"),
    Target("gateway-compare", "GatewayCompareUser", *GW, "/v1/compare", compare=True),
    # Each model in-process behind the leanest HTTP server (servers/floor.py): what the hardware
    # allows for this model, measured in the same run as the servers.
    *(
        Target(f"floor-{kind}", user, env, local_url(port), FLOOR_PATH, backend=f"floor-{kind}")
        for kind, (user, env, port) in FLOORS.items()
    ),
    # The load generator's calibration: load_tests/servers/trivial.py answers at once.
    Target("trivial", "TrivialUser", "TRIVIAL_URL", local_url(ports.TRIVIAL), "/"),
]  # fmt: skip
BY_NAME = {t.name: t for t in TARGETS}
# What the servers serve (not the load tools' own floor and trivial servers).
SERVING_TARGETS = [t for t in TARGETS if t.name != "trivial" and not t.name.startswith("floor-")]


@dataclass(frozen=True)
class Endpoints:
    """Where one run's targets and metrics are: host env var -> base URL (gRPC: host:port)."""

    urls: dict[str, str] = field(default_factory=dict)
    tf_metrics: str = ""
    ts_metrics: str = ""
    gateway_metrics: str = ""

    @classmethod
    def native(cls, p: Any) -> Endpoints:
        """The native stack's addresses (``serving.native.settings.ServingPorts``)."""
        return cls(
            urls={
                TF[0]: local_url(p.tfserving_rest),
                TS[0]: local_url(p.torchserve_inference),
                GW[0]: local_url(p.gateway),
                TF_GRPC[0]: local_address(p.tfserving_grpc),
                TS_GRPC[0]: local_address(p.torchserve_grpc_inference),
            },
            tf_metrics=f"{local_url(p.tfserving_rest)}/monitoring/prometheus/metrics",
            ts_metrics=f"{local_url(p.torchserve_metrics)}/metrics",
            gateway_metrics=f"{local_url(p.gateway)}/metrics",
        )

    def with_url(self, target: Target, url: str) -> Endpoints:
        """These endpoints plus ``target`` at ``url`` (a floor or the trivial server started by a run)."""
        return replace(self, urls={**self.urls, target.host_env: url})

    def url(self, target: Target) -> str:
        return self.urls.get(target.host_env, target.default_host)
