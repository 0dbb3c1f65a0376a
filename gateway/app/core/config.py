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
    TFSERVING_QUEUE_ROWS,
    TORCH_MODEL_NAME,
    TORCHSERVE_QUEUE_JOBS,
)

Protocol = Literal["rest", "grpc"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = ports.GATEWAY
    # The Open Inference Protocol over gRPC (inference.GRPCInferenceService); 0 turns it off.
    grpc_port: int = Field(ports.GATEWAY_GRPC, ge=0)

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

    # Calls to backends. Every request has one time budget: X-Request-Timeout-Ms when the client
    # sends it (at most max_timeout_ms), else default_timeout_ms. Each backend call, and a retry or a
    # fallback after it, gets what is left of it (gRPC sends it on as the call's deadline).
    default_timeout_ms: float = Field(2000.0, gt=0, description="a request's budget when the client sends none")
    max_timeout_ms: float = Field(30_000.0, gt=0, description="the longest budget a client may ask for")
    backend_pool: int = Field(100, ge=1, description="keep-alive connections per backend (REST)")
    status_timeout_s: float = Field(1.0, gt=0)
    breaker_failures: int = Field(5, ge=1, description="consecutive failures that open a backend's circuit")
    breaker_reset_s: float = Field(5.0, gt=0, description="seconds an open circuit waits before one probe")
    # A probe that fails doubles the pause, up to this (Envoy's outlier detection ejects for longer).
    breaker_max_reset_s: float = Field(80.0, gt=0)

    # Larger requests are split into chunks of this many rows, sent concurrently. Both servers take
    # MAX_ROWS_PER_REQUEST rows and split them into runs themselves, so by default nothing is chunked;
    # lower it for a backend configured with a smaller limit.
    backend_max_rows: int = Field(MAX_ROWS_PER_REQUEST, ge=1)

    # `auto` routing: weight per backend name (the default sends everything to TF Serving).
    route_weights: dict[str, float] = {"tfserving": 1.0}

    # Admission control per backend, in rows (gateway/app/admission.py, limiter.py; docs/gateway.md
    # has the measurements). The limit adapts to each backend's round trip; it starts at one full
    # execution batch (the most either server takes into one forward pass) and never exceeds what the
    # server's own queue holds (mnist_serving/spec.py), so the gateway, not the server's queue, is
    # where excess is refused. Beyond the limit, what cannot start within the queue deadline is
    # refused at once: 100 ms is ~100 requests' work at this machine's ~1,000 req/s through the
    # gateway, so a brief slowdown is absorbed and only sustained overload is refused.
    admission_limit: float = Field(MAX_EXECUTION_BATCH, ge=1, description="initial rows in flight per backend")
    admission_min_limit: float = Field(1, ge=1, description="the adaptive limit never goes below this")
    tfserving_max_limit: float = Field(TFSERVING_QUEUE_ROWS, ge=1, description="TF Serving's batch queue, rows")
    torchserve_max_limit: float = Field(TORCHSERVE_QUEUE_JOBS, ge=1, description="TorchServe's job queue")
    admission_queue: float = Field(256, ge=0, description="rows waiting per backend beyond the limit")
    queue_timeout_ms: float = Field(100.0, gt=0, description="longest wait for a slot before a 503")
    # While several principals compete for a backend, one may hold at most this share of its limit
    # (429 past it); alone it may use all of it. 1 turns the check off.
    client_share: float = Field(0.5, gt=0, le=1)
    # `auto` falls back when its choice fails; a saturated backend is not failing, so by default its
    # 503 stands (falling back would move the overload onto the other server).
    fallback_on_overload: bool = False

    # The gateway's own protection (gateway/app/overload.py): prediction requests are refused at the
    # door, before their body is read, with a probability rising from 0 at this event-loop lag ...
    loop_lag_low_ms: float = Field(2.0, ge=0)
    # ... to 1 at this one.
    loop_lag_high_ms: float = Field(20.0, gt=0)

    # Input limits
    max_rows: int = Field(MAX_ROWS_PER_REQUEST, ge=1)
    max_body_bytes: int = Field(MAX_JSON_BODY_BYTES, ge=1024)
    max_image_bytes: int = Field(MAX_IMAGE_BYTES, ge=1024)
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, ge=784)

    # Comma-separated keys, each `name:key` (the name identifies the caller in fair shares and
    # logs) or a bare key (named key-1, key-2, ... in order); empty means the API is open.
    api_keys: str = ""
    # Refuse to start without a key (Kubernetes sets it: a missing Secret must not open the API).
    require_api_keys: bool = False
    # Names of the keys that may change routing (canary splits); empty: the first key's. With the
    # API open, only a client on this machine (loopback) may.
    admin_keys: str = ""
    # Image uploads are decoded on this many threads off the event loop; more waiting than
    # image_decode_queue are refused with 503 at once.
    image_decode_threads: int = Field(1, ge=1)
    image_decode_queue: int = Field(8, ge=0)
    log_level: str = "INFO"

    # The prediction routes that carry the traffic skip FastAPI's per-request machinery (api/hot.py;
    # ~100 µs of CPU a request). Off: every request goes through FastAPI (same answers).
    hot_path: bool = True

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

    @field_validator("api_keys")
    @classmethod
    def _keys_well_formed(cls, v: str) -> str:
        for i, entry in enumerate(e.strip() for e in v.split(",") if e.strip()):
            name, _, key = entry.rpartition(":")
            if ":" in entry and not (name and key):
                raise ValueError(f"API key entry {i + 1} is 'name:' or ':key'; write name:key or a bare key")
        return v

    @property
    def api_key_names(self) -> dict[str, str]:
        """Key -> the principal's name (``name:key`` entries, bare keys named ``key-<n>``)."""
        out: dict[str, str] = {}
        for i, entry in enumerate(e.strip() for e in self.api_keys.split(",") if e.strip()):
            name, sep, key = entry.rpartition(":")
            out[key if sep else entry] = name if sep else f"key-{i + 1}"
        return out

    @property
    def admin_names(self) -> frozenset[str]:
        named = frozenset(n.strip() for n in self.admin_keys.split(",") if n.strip())
        return named or frozenset(list(self.api_key_names.values())[:1])

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(self.api_key_names)

    def check_startup(self) -> None:
        """Settings that must stop the gateway from starting."""
        if self.require_api_keys and not self.api_key_set:
            raise ValueError(
                "GATEWAY_REQUIRE_API_KEYS is set but GATEWAY_API_KEYS holds no key: refusing to serve an open API"
            )
        if self.loop_lag_low_ms >= self.loop_lag_high_ms:
            raise ValueError("GATEWAY_LOOP_LAG_LOW_MS must be below GATEWAY_LOOP_LAG_HIGH_MS")


@lru_cache
def get_settings() -> Settings:
    return Settings()
