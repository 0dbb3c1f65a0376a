"""Gateway settings from ``GATEWAY_*`` env vars; defaults match the native ports of `make serve`."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mnist_serving import ports
from mnist_serving.ports import local_address, local_url
from mnist_serving.spec import (
    MAX_EXECUTION_BATCH,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_JSON_BODY_BYTES,
    MAX_ROWS_PER_REQUEST,
    ONNX_MODEL_NAME,
    STABLE_LABEL,
    TF_MODEL_NAME,
    TORCH_MODEL_NAME,
)

Protocol = Literal["rest", "grpc"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = ports.GATEWAY

    # TensorFlow Serving
    tfserving_url: str = local_url(ports.TFSERVING_REST)
    tfserving_grpc_address: str = local_address(ports.TFSERVING_GRPC)
    tfserving_protocol: Protocol = "rest"
    tfserving_model: str = TF_MODEL_NAME
    # Route to the version behind this label; empty means the newest version served.
    tfserving_version_label: str = STABLE_LABEL

    # TorchServe
    torchserve_url: str = local_url(ports.TORCHSERVE_INFERENCE)
    torchserve_management_url: str = local_url(ports.TORCHSERVE_MANAGEMENT)
    torchserve_grpc_address: str = local_address(ports.TORCHSERVE_GRPC_INFERENCE)
    torchserve_protocol: Protocol = "rest"
    torchserve_model: str = TORCH_MODEL_NAME
    torchserve_onnx_model: str = ONNX_MODEL_NAME

    # Calls to backends
    backend_timeout_s: float = Field(2.0, gt=0)
    backend_pool: int = Field(100, ge=1, description="keep-alive connections per backend (REST)")
    status_timeout_s: float = Field(1.0, gt=0)
    breaker_failures: int = Field(5, ge=1, description="consecutive failures that open a backend's circuit")
    breaker_reset_s: float = Field(5.0, gt=0, description="seconds an open circuit waits before one probe")

    # Larger requests are split into chunks of this many rows, sent concurrently. Both servers take
    # MAX_ROWS_PER_REQUEST rows and split them into runs themselves, so by default nothing is chunked;
    # lower it for a backend configured with a smaller limit.
    backend_max_rows: int = Field(MAX_ROWS_PER_REQUEST, ge=1)

    # `auto` routing: weight per backend name (the default sends everything to TF Serving).
    route_weights: dict[str, float] = {"tfserving": 1.0}

    # Admission control per backend (gateway/app/admission.py; docs/gateway.md#overload has the
    # measurements). The limit is one full execution batch: the most either server takes into one
    # forward pass, so more in flight would only wait inside the server, where the gateway can no
    # longer refuse them. On the 2-core reference machine a backend serves ~1,000 req/s through the
    # gateway within a 20 ms p99 (docs/load-report-2cpu), ~5 in flight by Little's law: the limit
    # leaves room for a backend slowed down (a neighbour restarting) without refusing anything.
    # Beyond 32 in flight, what cannot start within the queue deadline is refused at once: 100 ms
    # is ~100 requests' work at that capacity, so a brief slowdown (the chaos run: a neighbour's
    # restart stalls the fallback server for seconds) is absorbed, and only sustained overload is
    # refused; with 20 ms, 7 of 29,291 requests were refused during such a restart.
    admission_limit: int = Field(MAX_EXECUTION_BATCH, ge=1, description="calls in flight per backend")
    admission_queue: int = Field(256, ge=0, description="calls waiting per backend beyond the limit")
    queue_timeout_ms: float = Field(100.0, gt=0, description="longest wait for a slot before a 503")
    # Share of a backend's slots one client (API key, else address) may hold while others wait (429
    # past it); 1 turns the check off.
    client_share: float = Field(1.0, gt=0, le=1)
    # `auto` falls back when its choice fails; a saturated backend is not failing, so by default its
    # 503 stands (falling back would move the overload onto the other server).
    fallback_on_overload: bool = False

    # Input limits
    max_rows: int = Field(MAX_ROWS_PER_REQUEST, ge=1)
    max_body_bytes: int = Field(MAX_JSON_BODY_BYTES, ge=1024)
    max_image_bytes: int = Field(MAX_IMAGE_BYTES, ge=1024)
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, ge=784)

    # Comma-separated keys; empty means the API is open.
    api_keys: str = ""
    log_level: str = "INFO"

    # Server processes. 1 natively and per container/pod, where replicas are the usual lever; more
    # use more cores of one machine (metrics are then summed across workers, see core/metrics.py).
    workers: int = Field(1, ge=1)
    # FastAPI's native OpenTelemetry (traces, metrics, logs through an OTel SDK you configure).
    otel: bool = False

    @field_validator("route_weights")
    @classmethod
    def _weights_positive(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("route_weights needs at least one positive weight and none negative")
        return v

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
