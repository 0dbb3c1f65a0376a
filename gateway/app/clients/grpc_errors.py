"""gRPC status codes onto the BackendError family."""

from __future__ import annotations

from typing import NoReturn

import grpc

from gateway.app.clients.base import BackendError, BackendRejected, BackendTimeout, BackendUnavailable

_CLIENT_FAULTS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}


def raise_for(backend: str, exc: grpc.aio.AioRpcError) -> NoReturn:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        raise BackendTimeout(backend, "no answer within the timeout") from exc
    if code == grpc.StatusCode.UNAVAILABLE:
        raise BackendUnavailable(backend, f"unavailable: {details}") from exc
    if code in _CLIENT_FAULTS:
        raise BackendRejected(backend, f"{code.name}: {details}") from exc
    raise BackendError(backend, f"{code.name}: {details}") from exc
