"""The small interface every backend client implements, and the errors they raise."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol

import httpx
import numpy as np


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

    async def predict(self, rows: np.ndarray) -> Prediction: ...

    async def status(self) -> Status: ...

    async def aclose(self) -> None: ...


def http_client(timeout: float, pool: int = 100) -> httpx.AsyncClient:
    """A pooled client whose small request bodies are not held back by Nagle's algorithm."""
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout)


def check_probabilities(backend: str, value: object, rows: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BackendError(backend, "response holds no numeric predictions") from exc
    if arr.shape != (rows, 10):
        raise BackendError(backend, f"response has predictions of shape {list(arr.shape)}, expected [{rows}, 10]")
    return arr


async def call_http(backend: str, request: httpx.Request, client: httpx.AsyncClient) -> httpx.Response:
    """Send one request, mapping transport failures onto the BackendError family."""
    try:
        return await client.send(request)
    except httpx.TimeoutException as exc:
        raise BackendTimeout(backend, f"no answer within the timeout ({type(exc).__name__})") from exc
    except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
        raise BackendUnavailable(backend, f"cannot reach {request.url.host}:{request.url.port} ({exc})") from exc
    except httpx.HTTPError as exc:
        raise BackendUnavailable(backend, f"transport error: {exc}") from exc


def http_error(backend: str, status: int, message: str) -> BackendError:
    """A backend's own error answer: its 4xx is a rejection, 503 unavailability, other 5xx a bad gateway."""
    text = f"HTTP {status}: {message}"
    if 400 <= status < 500:
        return BackendRejected(backend, text)
    if status == 503:
        return BackendUnavailable(backend, text)
    return BackendError(backend, text)
