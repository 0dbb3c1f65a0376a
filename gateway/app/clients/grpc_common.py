"""Shared by the gRPC clients: status codes onto the BackendError family, and stub set-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import grpc

from gateway.app.clients.base import (
    BackendError,
    BackendOverloaded,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)

_CLIENT_FAULTS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}


# What grpc-core says when no connection could be made: nothing was sent, so a retry is safe.
_NOT_CONNECTED = ("failed to connect", "connection refused", "connections to all backends failing")


def raise_for(backend: str, exc: grpc.aio.AioRpcError) -> NoReturn:
    code, details = exc.code(), exc.details() or ""
    lower = details.lower()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        raise BackendTimeout(backend, "no answer within the timeout") from exc
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED or (
        code == grpc.StatusCode.UNAVAILABLE and "queue" in lower and "full" in lower
    ):  # TF Serving: "The batch scheduling queue to which this task was submitted is full"
        raise BackendOverloaded(backend, f"{code.name}: {details}") from exc
    if code == grpc.StatusCode.UNAVAILABLE:
        sent = not any(s in lower for s in _NOT_CONNECTED)
        raise BackendUnavailable(backend, f"unavailable: {details}", sent=sent) from exc
    if code in _CLIENT_FAULTS:
        raise BackendRejected(backend, f"{code.name}: {details}") from exc
    raise BackendError(backend, f"{code.name}: {details}") from exc


# One HTTP/2 connection is long-lived: behind a Kubernetes ClusterIP it would pin each gateway to one
# server pod. With a ``dns:///<headless service>:<port>`` target the channel resolves every ready pod
# and balances calls over them round robin (re-resolving when a connection fails); keepalive pings
# while calls are in flight find a vanished pod in seconds instead of at the TCP timeout. Pings only
# with calls in flight: servers refuse clients that ping idle connections (GOAWAY too_many_pings).
CHANNEL_OPTIONS = (
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.dns_min_time_between_resolutions_ms", 5_000),
)


def unary_stub(address: str, method: str, response_type: Any) -> tuple[grpc.aio.Channel, Callable[..., Any]]:
    """A channel and one unary method on it, (de)serialising our hand-declared messages."""
    channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    stub = channel.unary_unary(
        method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_type.FromString
    )
    return channel, stub
