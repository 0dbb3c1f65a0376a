"""Every load-test target (which user classes, host, path or gRPC method, payload), the load tools'
own servers that serve some of them (``LocalServer``: the floors and the trivial server), and the
one ``Endpoints`` type: where each target's host and each server's metrics are in a given run.

Floors (load_tests/servers/floor.py: the same artifact in-process behind the leanest server), one
per way a server can be compared to one:
- ``floor-<kind>``: one aiohttp process, no batching (the leanest route; bench-tuning's and the
  sweep's reference);
- ``floor-<kind>-batching``: the same with the batch size and delay of the server it stands beside
  (TF Serving's batching.config, TorchServe's config.properties, read by runs/stack.py from their
  owners), the floor of a batching server's REST target;
- ``floor-<kind>-grpc``: that batching floor's gRPC endpoint (the same process), with the server's
  own method and messages: the floor of a gRPC target.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mnist_serving import ports
from mnist_serving.oip import MODEL_OF_BACKEND
from mnist_serving.ports import local_address, local_url
from mnist_serving.spec import (
    ONNX_MODEL_NAME,
    TF_MODEL_NAME,
    TF_PREDICT_METHOD,
    TORCH_MODEL_NAME,
    TORCHSERVE_PREDICTIONS_METHOD,
)

Payload = Literal["json", "png", "tensor", "v2"]  # v2: an Open Inference Protocol JSON body
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
    floor: str | None = None  # the floor target: the same model behind the leanest server, as this one is served
    local: str | None = None  # the LocalServer serving it (floors, trivial); None: a server of the stack

    @property
    def open_user_class(self) -> str:
        return f"OpenLoop{self.user_class}"

    @property
    def server(self) -> str | None:
        """The process behind it (tfserving, torchserve or floor-<kind>), for its metrics and CPU."""
        if self.local:
            return self.local
        if not self.backend:
            return None
        return self.backend.split("-")[0]


TF = ("TFSERVING_URL", local_url(ports.TFSERVING_REST))
TS = ("TORCHSERVE_URL", local_url(ports.TORCHSERVE_INFERENCE))
GW = ("GATEWAY_URL", local_url(ports.GATEWAY))
TF_GRPC = ("TFSERVING_GRPC_ADDRESS", local_address(ports.TFSERVING_GRPC))
TS_GRPC = ("TORCHSERVE_GRPC_ADDRESS", local_address(ports.TORCHSERVE_GRPC_INFERENCE))
Batching = Literal["tfserving", "torchserve"]


@dataclass(frozen=True)
class LocalServer:
    """A process the load tools start themselves on free ports: a floor (``kind``) or the trivial server."""

    name: str
    kind: str | None  # floor kind (torchscript, onnx, savedmodel); None: servers/trivial.py
    batching: Batching | None = None  # batch like this server (its batch size and delay)
    grpc: bool = False  # also serve the matching server's gRPC API
    url_env: str = ""  # host env var of its REST endpoint
    grpc_env: str = ""  # host env var of its gRPC endpoint


# Floor kind -> the server whose batching its batching floor copies, and that server's gRPC model.
FLOOR_OF = {"savedmodel": "tfserving", "torchscript": "torchserve", "onnx": "torchserve"}
LOCAL_SERVERS = {
    "trivial": LocalServer("trivial", None, url_env="TRIVIAL_URL"),
    **{
        f"floor-{kind}": LocalServer(f"floor-{kind}", kind, url_env=f"FLOOR_{kind.upper()}_URL")
        for kind in FLOOR_OF
    },
    **{
        f"floor-{kind}-batching": LocalServer(
            f"floor-{kind}-batching", kind, FLOOR_OF[kind],  # type: ignore[arg-type]
            grpc=kind != "onnx",  # the gRPC targets: TF Serving's and TorchServe's TorchScript model
            url_env=f"FLOOR_{kind.upper()}_BATCHING_URL", grpc_env=f"FLOOR_{kind.upper()}_GRPC_ADDRESS",
        )
        for kind in FLOOR_OF
    },
}  # fmt: skip
# The lean floors, the batching floors (the floors of the REST targets), the gRPC floors.
TF_LEAN, TS_LEAN, ONNX_LEAN = "floor-savedmodel", "floor-torchscript", "floor-onnx"
TF_FLOOR, TS_FLOOR, ONNX_FLOOR = "floor-savedmodel-batching", "floor-torchscript-batching", "floor-onnx-batching"
TF_GRPC_FLOOR, TS_GRPC_FLOOR = "floor-savedmodel-grpc", "floor-torchscript-grpc"
# Floor kind -> its closed-loop user class, host env var and default port (the lean floors).
FLOORS = {
    "torchscript": ("FloorTorchScriptUser", "FLOOR_TORCHSCRIPT_URL", ports.FLOOR_TORCHSCRIPT),
    "onnx": ("FloorOnnxUser", "FLOOR_ONNX_URL", ports.FLOOR_ONNX),
    "savedmodel": ("FloorSavedModelUser", "FLOOR_SAVEDMODEL_URL", ports.FLOOR_SAVEDMODEL),
}
_USER = {"torchscript": "TorchScript", "onnx": "Onnx", "savedmodel": "SavedModel"}
_GRPC_FLOORS = {"savedmodel": (TF_PREDICT_METHOD, TF_MODEL_NAME), "torchscript": (TORCHSERVE_PREDICTIONS_METHOD,
                                                                                 TORCH_MODEL_NAME)}  # fmt: skip

TARGETS = [
    Target("tfserving", "TFServingUser", *TF, f"/v1/models/{TF_MODEL_NAME}:predict", backend="tfserving",
           floor=TF_FLOOR),
    Target("torchserve", "TorchServeUser", *TS, f"/predictions/{TORCH_MODEL_NAME}", backend="torchserve",
           floor=TS_FLOOR),
    Target("torchserve-onnx", "TorchServeOnnxUser", *TS, f"/predictions/{ONNX_MODEL_NAME}",
           backend="torchserve-onnx", floor=ONNX_FLOOR),
    Target("tfserving-grpc", "TFServingGrpcUser", *TF_GRPC, TF_PREDICT_METHOD, payload="tensor",
           backend="tfserving", protocol="grpc", floor=TF_GRPC_FLOOR),
    Target("torchserve-grpc", "TorchServeGrpcUser", *TS_GRPC, TORCHSERVE_PREDICTIONS_METHOD, payload="tensor",
           backend="torchserve", protocol="grpc", model=TORCH_MODEL_NAME, floor=TS_GRPC_FLOOR),
    Target("gateway-tfserving", "GatewayTFServingUser", *GW, "/v1/predict?backend=tfserving", backend="tfserving",
           via_gateway=True, floor=TF_FLOOR),
    Target("gateway-torchserve", "GatewayTorchServeUser", *GW, "/v1/predict?backend=torchserve",
           backend="torchserve", via_gateway=True, floor=TS_FLOOR),
    Target("gateway-torchserve-onnx", "GatewayTorchServeOnnxUser", *GW, "/v1/predict?backend=torchserve-onnx",
           backend="torchserve-onnx", via_gateway=True, floor=ONNX_FLOOR),
    # The Open Inference Protocol route (KServe v2), what Triton's and KServe's clients send.
    Target("gateway-v2-torchserve", "GatewayV2TorchServeUser", *GW,
           f"/v2/models/{MODEL_OF_BACKEND['torchserve']}/infer", payload="v2", backend="torchserve",
           via_gateway=True, floor=TS_FLOOR),
    # `auto`: the gateway's routing policy with fallback (the chaos run's target); backend=None: it may be either.
    Target("gateway-auto", "GatewayAutoUser", *GW, "/v1/predict?backend=auto", via_gateway=True),
    Target("gateway-image", "GatewayImageUser", *GW, "/v1/predict/image?backend=tfserving", payload="png"),
    Target("gateway-compare", "GatewayCompareUser", *GW, "/v1/compare", compare=True),
    # Each model in-process behind the leanest HTTP server (servers/floor.py): what the hardware
    # allows for this model, measured in the same run as the servers. Lean, batching like its server
    # (no default port: a run starts them on free ports), and that one's gRPC endpoint.
    *(
        Target(f"floor-{kind}", user, env, local_url(port), FLOOR_PATH, local=f"floor-{kind}")
        for kind, (user, env, port) in FLOORS.items()
    ),
    *(
        Target(f"floor-{kind}-batching", f"Floor{_USER[kind]}BatchingUser", f"FLOOR_{kind.upper()}_BATCHING_URL", "",
               FLOOR_PATH, local=f"floor-{kind}-batching")
        for kind in FLOORS
    ),
    *(
        Target(f"floor-{kind}-grpc", f"Floor{_USER[kind]}GrpcUser", f"FLOOR_{kind.upper()}_GRPC_ADDRESS", "",
               method, payload="tensor", protocol="grpc", model=model, local=f"floor-{kind}-batching")
        for kind, (method, model) in _GRPC_FLOORS.items()
    ),
    # The load generator's calibration: load_tests/servers/trivial.py answers at once.
    Target("trivial", "TrivialUser", "TRIVIAL_URL", local_url(ports.TRIVIAL), "/", local="trivial"),
]  # fmt: skip
BY_NAME = {t.name: t for t in TARGETS}
# What the servers serve (not the load tools' own floor and trivial servers).
SERVING_TARGETS = [t for t in TARGETS if not t.local]


@dataclass(frozen=True)
class Endpoints:
    """Where one run's targets and metrics are: host env var -> base URL (gRPC: host:port)."""

    urls: dict[str, str] = field(default_factory=dict)
    tf_metrics: str = ""
    ts_metrics: str = ""
    gateway_metrics: str = ""
    pids: dict[str, int] = field(default_factory=dict)  # server name -> root PID, where the run started it
    commands: dict[str, list[str]] = field(default_factory=dict)  # local server -> its command line

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

    def with_local(self, server: str, urls: dict[str, str], pid: int, argv: list[str]) -> Endpoints:
        """These endpoints plus a local server the run started (its addresses, PID, command line)."""
        return replace(
            self,
            urls={**self.urls, **urls},
            pids={**self.pids, server: pid},
            commands={**self.commands, server: argv},
        )

    def with_pids(self, pids: dict[str, int]) -> Endpoints:
        return replace(self, pids={**self.pids, **pids})

    def url(self, target: Target) -> str:
        return self.urls.get(target.host_env, target.default_host)
