"""Pure ASGI middleware (BaseHTTPMiddleware costs ~100 µs a request): request id, size limit, metrics.

It runs on every request, so it does little: one pass over the headers, a request id from a
per-process random prefix and a counter (unique, and cheaper than uuid4), pre-bound metric children.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app.core.logging import request_id
from gateway.app.core.metrics import GatewayMetrics

REQUEST_ID_HEADER = b"x-request-id"
_KNOWN_ROUTES = frozenset(
    {
        "/v1/predict",
        "/v1/predict/image",
        "/v1/compare",
        "/v1/backends",
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/docs",
        "/redoc",
        "/openapi.json",
    }
)


def _route(path: str) -> str:
    if path in _KNOWN_ROUTES:
        return path
    if path.startswith(("/static/", "/docs-assets/")):
        return "/static"
    return "other"


# A multipart body carries the file plus its part headers and boundaries: allowed this much more
# than the image limit, so an image of exactly the limit is accepted (the route checks the file).
MULTIPART_OVERHEAD = 64 * 1024


class GatewayMiddleware:
    """``max_body_bytes`` bounds JSON (and any other) bodies, ``max_image_bytes`` multipart uploads."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, max_body_bytes: int, max_image_bytes: int):
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes
        self.max_upload_bytes = max_image_bytes + MULTIPART_OVERHEAD
        self._id_prefix = os.urandom(8).hex()  # 16 hex digits; with the 16-digit counter, 32 like a uuid
        self._ids = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = ""
        length = None
        multipart = False
        for key, value in scope["headers"]:
            if key == REQUEST_ID_HEADER:
                rid = value.decode("latin-1")[:128]
            elif key == b"content-length":
                length = value
            elif key == b"content-type":
                multipart = value[:19].lower() == b"multipart/form-data"
        if not rid:
            rid = f"{self._id_prefix}{next(self._ids):016x}"
        rid_header = (REQUEST_ID_HEADER, rid.encode("latin-1"))
        token = request_id.set(rid)
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            limit = self.max_upload_bytes if multipart else self.max_body_bytes
            if length is not None and length.isdigit() and int(length) > limit:
                what = "an upload (the image limit plus multipart framing)" if multipart else "a JSON body"
                await _reject(
                    send_wrapper, 413, "body_too_large",
                    f"request body of {int(length)} bytes exceeds the limit of {limit} bytes for {what}",
                )  # fmt: skip
                return
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state")
            backend = state.get("backend", "-") if state else "-"
            elapsed = time.perf_counter() - start
            self.metrics.observe_request(_route(scope["path"]), backend, status, elapsed)
            if state and "shed" in state:
                self.metrics.observe_shed(state["shed"], elapsed)
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
