"""Pure ASGI middleware (BaseHTTPMiddleware costs ~100 µs a request): request id, size limit, metrics."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app.core.logging import request_id
from gateway.app.core.metrics import GatewayMetrics

REQUEST_ID_HEADER = b"x-request-id"
_KNOWN_ROUTES = {
    "/v1/predict",
    "/v1/predict/image",
    "/v1/compare",
    "/v1/backends",
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
}


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, max_body_bytes: int):
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        rid = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")[:128] or uuid.uuid4().hex
        token = request_id.set(rid)
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, rid.encode("latin-1"))]
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await _reject(
                    send_wrapper,
                    413,
                    "body_too_large",
                    f"request body of {int(length)} bytes exceeds the limit of {self.max_body_bytes}",
                )
                return
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope["path"]
            route = path if path in _KNOWN_ROUTES else ("/static" if path.startswith("/static/") else "other")
            backend = scope.get("state", {}).get("backend", "-")
            self.metrics.requests.labels(route, backend, str(status_holder["status"])).inc()
            self.metrics.latency.labels(route, backend).observe(time.perf_counter() - start)
            request_id.reset(token)


async def _reject(send: Any, status: int, type_: str, message: str) -> None:
    body = orjson.dumps({"error": {"status": status, "type": type_, "message": message}})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
