"""The small interface every backend client implements, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    timeout_s: float = 2.0  # the longest a prediction may take (the request's budget cuts it shorter)
    status_timeout_s: float = 1.0  # a readiness check
    pool: int = 100  # REST keep-alive connections


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # float32 [n, NUM_CLASSES]
    model_version: str


@dataclass(frozen=True)
class Status:
    ready: bool
    model_version: str | None = None  # the version a request without one goes to
    implementation: str | None = None  # "real" or "standin" (TF Serving); "real" (TorchServe)
    detail: str = ""
    versions: tuple[str, ...] = ()  # every version loaded and serving, ascending
    labels: dict[str, str] = field(default_factory=dict)  # label -> version (TF Serving's version_labels)


class BackendError(Exception):
    """A backend failed. ``retryable`` means nothing reached the model, so trying again is safe."""

    status = 502
    kind = "bad_backend_response"
    retryable = False
    retry_after_s: float | None = None  # when to come back, if known (an open circuit's next probe)

    def __init__(self, backend: str, message: str):
        super().__init__(f"{backend}: {message}")
        self.backend, self.message = backend, message


class BackendUnavailable(BackendError):
    """Unreachable. Retryable unless the call may have reached the model (``sent=True``: the
    connection broke after the request was written)."""

    status, kind, retryable = 503, "backend_unavailable", True

    def __init__(self, backend: str, message: str, *, sent: bool = False):
        super().__init__(backend, message)
        self.retryable = not sent


class BackendTimeout(BackendError):
    status, kind = 504, "backend_timeout"


class BackendOverloaded(BackendError):
    """The backend said it is full (TorchServe's 503 when its job queue is full, TF Serving's
    UNAVAILABLE "batch scheduling queue ... is full", RESOURCE_EXHAUSTED, HTTP 429). Never retried,
    never a breaker failure: it feeds the adaptive limit instead."""

    status, kind = 503, "backend_overloaded"


class BackendRejected(BackendError):
    """The backend answered the request with an error of its own."""

    kind = "backend_rejected"


class UnknownVersion(BackendRejected):
    """The version or label asked for is not one the backend has."""

    status, kind = 404, "unknown_version"


class BackendClient(Protocol):
    name: str  # the routing name: tfserving, torchserve, torchserve-onnx
    protocol: str  # rest or grpc
    address: str

    def __init__(self, settings: ClientSettings) -> None: ...

    async def predict(
        self, rows: np.ndarray, json_body: bytes | None = None, *, timeout: float, version: str | None = None
    ) -> Prediction:
        """``json_body``: ``{"instances": rows}`` as JSON already (the client's own body), which a
        REST client sends as it is; gRPC clients always send the rows as a binary tensor.
        ``timeout``: seconds left of the request's budget (gRPC sends it as the call's deadline).
        ``version``: a version number or label (None: the server's default); the answer's
        ``model_version`` is the version that computed it."""
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
    except ConnectError as exc:  # nothing was sent: safe to retry
        raise BackendUnavailable(backend, str(exc)) from exc
    except TransportError as exc:  # disconnects, resets, malformed answers: the model may have run
        raise BackendUnavailable(backend, f"transport error: {exc}", sent=True) from exc


def http_error(backend: str, status: int, message: str) -> BackendError:
    """A backend's own error answer: 429 and 503 are overload (both servers answer 503 when their
    queue is full: TorchServe's job queue, TF Serving's batch queue), other 4xx a rejection of the
    request, other 5xx a bad gateway."""
    text = f"HTTP {status}: {message}"
    if status in (429, 503):
        return BackendOverloaded(backend, text)
    if 400 <= status < 500:
        return BackendRejected(backend, text)
    return BackendError(backend, text)
