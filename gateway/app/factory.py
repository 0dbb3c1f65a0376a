"""Build the backend clients the settings ask for."""

from __future__ import annotations

from gateway.app.clients.base import BackendClient
from gateway.app.clients.tfserving_grpc import TFServingGRPCClient
from gateway.app.clients.tfserving_rest import TFServingRESTClient
from gateway.app.clients.torchserve_grpc import TorchServeGRPCClient
from gateway.app.clients.torchserve_rest import TorchServeRESTClient, TorchServeStatus
from gateway.app.core.config import Settings


def build_clients(s: Settings) -> dict[str, BackendClient]:
    timeout, status_timeout, pool = s.backend_timeout_s, s.status_timeout_s, s.backend_pool
    tf_rest = TFServingRESTClient(
        "tfserving", s.tfserving_url, s.tfserving_model, s.tfserving_version_label, timeout, status_timeout, pool
    )
    tf: BackendClient = tf_rest
    if s.tfserving_protocol == "grpc":
        tf = TFServingGRPCClient(
            "tfserving", s.tfserving_grpc_address, s.tfserving_model, s.tfserving_version_label, timeout, tf_rest
        )
    clients: dict[str, BackendClient] = {"tfserving": tf}
    for name, model in (("torchserve", s.torchserve_model), ("torchserve-onnx", s.torchserve_onnx_model)):
        status = TorchServeStatus(s.torchserve_management_url, model, status_timeout)
        if s.torchserve_protocol == "grpc":
            clients[name] = TorchServeGRPCClient(name, s.torchserve_grpc_address, model, timeout, status)
        else:
            clients[name] = TorchServeRESTClient(name, s.torchserve_url, model, timeout, status, pool)
    return clients
