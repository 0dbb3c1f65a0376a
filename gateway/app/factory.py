"""Build the backend clients the settings ask for: one ``ClientSettings`` per backend, handed to the
client class of its server and protocol."""

from __future__ import annotations

from gateway.app.clients.base import BackendClient, ClientSettings
from gateway.app.clients.tfserving_grpc import TFServingGRPCClient
from gateway.app.clients.tfserving_rest import TFServingRESTClient
from gateway.app.clients.torchserve_grpc import TorchServeGRPCClient
from gateway.app.clients.torchserve_rest import TorchServeRESTClient
from gateway.app.core.config import Protocol, Settings

CLIENTS: dict[tuple[str, Protocol], type[BackendClient]] = {
    ("tfserving", "rest"): TFServingRESTClient,
    ("tfserving", "grpc"): TFServingGRPCClient,
    ("torchserve", "rest"): TorchServeRESTClient,
    ("torchserve", "grpc"): TorchServeGRPCClient,
}


def client_settings(s: Settings) -> dict[str, tuple[str, Protocol, ClientSettings]]:
    """Routing name -> (server, protocol, its client's settings)."""

    def client(name: str, url: str, grpc_address: str, model: str, **only: str) -> ClientSettings:
        return ClientSettings(name, url, grpc_address, model, timeout_s=s.max_timeout_ms / 1e3,
                              status_timeout_s=s.status_timeout_s, pool=s.backend_pool, **only)  # fmt: skip

    tf = client("tfserving", s.tfserving_url, s.tfserving_grpc_address, s.tfserving_model,
                version_label=s.tfserving_version_label)  # fmt: skip
    out = {"tfserving": ("tfserving", s.tfserving_protocol, tf)}
    for name, model in (("torchserve", s.torchserve_model), ("torchserve-onnx", s.torchserve_onnx_model)):
        management = s.torchserve_management_url
        ts = client(name, s.torchserve_url, s.torchserve_grpc_address, model, management_url=management)
        out[name] = ("torchserve", s.torchserve_protocol, ts)
    return out


def build_clients(s: Settings) -> dict[str, BackendClient]:
    return {name: CLIENTS[server, protocol](cs) for name, (server, protocol, cs) in client_settings(s).items()}
