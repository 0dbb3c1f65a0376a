"""The small interface every backend client implements, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gateway.app.clients.http1 import ConnectError, HTTPPool, Response, Timeout, TransportError
from mnist_serving.spec import NUM_CLASSES


@dataclass(frozen=True)
class ClientSettings:
    """Everything one backend client needs. Every client takes exactly this (triton's client shape:
    one constructor, the same methods, per server and protocol); each reads the fields it uses."""

    name: str  # the routing name: tfserving, torchserve, torchserve-onnx
    url: str  # REST base URL (TF Serving's REST API also answers a gRPC client's readiness)
    grpc_address: str  # host:port
    model: str
    version_label: str = ""  # TF Serving: route to the version behind this label ("" = newest)
    management_url: str = ""  # TorchServe: its management API, for readiness
    timeout_s: float = 2.0  # a prediction
    status_timeout_s: float = 1.0  # a readiness check
    pool: int = 100  # REST keep-alive connections


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # float32 [n, NUM_CLASSES]
    model_version: str


@dataclass(frozen=True)
class Status:
    ready: bool
    model_version: str | None = None
    implementation: str | None = None  # TF Serving: "real" or "standin"
    detail: str = ""


class BackendError(Exception):
    """A backend failed. ``retryable`` means nothing reached the model, so trying again is safe."""

    status = 502
    kind = "bad_backend_response"
    retryable = False

    def __init__(self, backend: str, message: str):
        super().__init__(f"{backend}: {message}")
        self.backend, self.message = backend, message


class BackendUnavailable(BackendError):
    status, kind, retryable = 503, "backend_unavailable", True


class BackendTimeout(BackendError):
    status, kind = 504, "backend_timeout"


class BackendRejected(BackendError):
    """The backend answered the request with an error of its own."""

    kind = "backend_rejected"


class BackendClient(Protocol):
    name: str  # the routing name: tfserving, torchserve, torchserve-onnx
    protocol: str  # rest or grpc
    address: str

    def __init__(self, settings: ClientSettings) -> None: ...

    async def predict(self, rows: np.ndarray, json_body: bytes | None = None) -> Prediction:
        """``json_body``: ``{"instances": rows}`` as JSON already (the client's own body), which a
        REST client sends as it is; gRPC clients always send the rows as a binary tensor."""
        ...

    async def status(self) -> Status: ...

    async def aclose(self) -> None: ...


def check_probabilities(backend: str, value: object, rows: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BackendError(backend, "response holds no numeric predictions") from exc
    if arr.shape != (rows, NUM_CLASSES):
        raise BackendError(
            backend, f"response has predictions of shape {list(arr.shape)}, expected [{rows}, {NUM_CLASSES}]"
        )
    return arr


async def call_http(backend: str, pool: HTTPPool, head: bytes, body: bytes | None, timeout: float) -> Response:
    """One request (``head`` from ``pool.head``), with transport failures mapped onto BackendError."""
    try:
        return await pool.request(head, body, timeout)
    except Timeout as exc:
        raise BackendTimeout(backend, "no answer within the timeout") from exc
    except ConnectError as exc:
        raise BackendUnavailable(backend, str(exc)) from exc
    except TransportError as exc:  # disconnects, resets, malformed answers
        raise BackendUnavailable(backend, f"transport error: {exc}") from exc


def http_error(backend: str, status: int, message: str) -> BackendError:
    """A backend's own error answer: its 4xx is a rejection, 503 unavailability, other 5xx a bad gateway."""
    text = f"HTTP {status}: {message}"
    if 400 <= status < 500:
        return BackendRejected(backend, text)
    if status == 503:
        return BackendUnavailable(backend, text)
    return BackendError(backend, text)
