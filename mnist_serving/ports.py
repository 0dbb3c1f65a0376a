"""Default native ports. Each can be overridden by the env var named beside it. ``local_url`` and
``local_address`` are the one place that builds a loopback address from a port."""

from typing import Final

LOOPBACK: Final = "127.0.0.1"  # every native service binds here only


def local_address(port: int) -> str:
    """``127.0.0.1:<port>`` (a gRPC target)."""
    return f"{LOOPBACK}:{port}"


def local_url(port: int, path: str = "") -> str:
    """``http://127.0.0.1:<port><path>``."""
    return f"http://{LOOPBACK}:{port}{path}"


TFSERVING_GRPC: Final = 8500  # TFSERVING_GRPC_PORT
TFSERVING_REST: Final = 8501  # TFSERVING_REST_PORT
TORCHSERVE_INFERENCE: Final = 8080  # TORCHSERVE_INFERENCE_PORT
TORCHSERVE_MANAGEMENT: Final = 8081  # TORCHSERVE_MANAGEMENT_PORT
TORCHSERVE_METRICS: Final = 8082  # TORCHSERVE_METRICS_PORT
TORCHSERVE_GRPC_INFERENCE: Final = 7070  # TORCHSERVE_GRPC_INFERENCE_PORT
TORCHSERVE_GRPC_MANAGEMENT: Final = 7071  # TORCHSERVE_GRPC_MANAGEMENT_PORT
GATEWAY: Final = 8000  # GATEWAY_PORT
GATEWAY_GRPC: Final = 8001  # GATEWAY_GRPC_PORT: the Open Inference Protocol over gRPC (Triton's convention)
# The load tools' own servers (load_tests/servers): each model behind the leanest HTTP route, and a
# server that answers at once (the generator's calibration). They start these on free ports; these
# are the addresses a by-hand `python -m load_tests.servers.floor torchscript` listens on.
FLOOR_TORCHSCRIPT: Final = 8091  # FLOOR_TORCHSCRIPT_PORT
FLOOR_ONNX: Final = 8092  # FLOOR_ONNX_PORT
FLOOR_SAVEDMODEL: Final = 8093  # FLOOR_SAVEDMODEL_PORT
TRIVIAL: Final = 8099  # TRIVIAL_PORT
