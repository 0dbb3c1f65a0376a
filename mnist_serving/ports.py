"""Default native ports. Each can be overridden by the env var named beside it."""

from typing import Final

TFSERVING_GRPC: Final = 8500  # TFSERVING_GRPC_PORT
TFSERVING_REST: Final = 8501  # TFSERVING_REST_PORT
TORCHSERVE_INFERENCE: Final = 8080  # TORCHSERVE_INFERENCE_PORT
TORCHSERVE_MANAGEMENT: Final = 8081  # TORCHSERVE_MANAGEMENT_PORT
TORCHSERVE_METRICS: Final = 8082  # TORCHSERVE_METRICS_PORT
TORCHSERVE_GRPC_INFERENCE: Final = 7070  # TORCHSERVE_GRPC_INFERENCE_PORT
TORCHSERVE_GRPC_MANAGEMENT: Final = 7071  # TORCHSERVE_GRPC_MANAGEMENT_PORT
GATEWAY: Final = 8000  # GATEWAY_PORT
# The load tools' own servers (load_tests/servers): each model behind the leanest HTTP route, and a
# server that answers at once (the generator's calibration). They start these on free ports; these
# are the addresses a by-hand `python -m load_tests.servers.floor torchscript` listens on.
FLOOR_TORCHSCRIPT: Final = 8091  # FLOOR_TORCHSCRIPT_PORT
FLOOR_ONNX: Final = 8092  # FLOOR_ONNX_PORT
FLOOR_SAVEDMODEL: Final = 8093  # FLOOR_SAVEDMODEL_PORT
TRIVIAL: Final = 8099  # TRIVIAL_PORT
