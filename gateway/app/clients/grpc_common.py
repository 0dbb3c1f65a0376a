"""Shared by the gRPC clients: status codes onto the BackendError family, and stub set-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

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


def unary_stub(address: str, method: str, response_type: Any) -> tuple[grpc.aio.Channel, Callable[..., Any]]:
    """A channel and one unary method on it, (de)serialising our hand-declared messages."""
    channel = grpc.aio.insecure_channel(address)
    stub = channel.unary_unary(
        method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_type.FromString
    )
    return channel, stub
