"""The small interface every backend client implements, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gateway.app.clients.http1 import ConnectError, HTTPPool, Response, Timeout, TransportError


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # float32 [n, 10]
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
    if arr.shape != (rows, 10):
        raise BackendError(backend, f"response has predictions of shape {list(arr.shape)}, expected [{rows}, 10]")
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
