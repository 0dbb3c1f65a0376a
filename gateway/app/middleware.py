"""Pure ASGI middleware (BaseHTTPMiddleware costs ~100 µs a request): the door, request id, size
limit, metrics.

It runs on every request, so it does little: one pass over the headers, a request id from a
per-process random prefix and a counter (unique, and cheaper than uuid4), pre-bound metric children.

The door: while the gateway's own event loop lags (overload.LoopLag), a share of prediction requests
is refused here, before anything of their body is read (503 ``gateway_overloaded``).

The size limit is counted on the bytes received: a Content-Length over the limit is refused before
the body is read, and a body without one (chunked) is counted as it arrives and refused as soon as
it passes the limit. Both answers close the connection, so the rest of the body is never read.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app.api.hot import HotRoutes
from gateway.app.core.errors import APIError, shaped
from gateway.app.core.logging import request_id
from gateway.app.core.metrics import GatewayMetrics
from gateway.app.overload import LoopLag

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
        "/favicon.ico",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
    }
)


def _route(path: str) -> str:
    if path in _KNOWN_ROUTES:
        return path
    if path.startswith(("/static/", "/docs-assets/")):
        return "/static"
    if path.startswith("/v2/models/"):  # one label per kind of route, not per model (bounded cardinality)
        return "/v2/models/{model}/infer" if path.endswith("/infer") else "/v2/models/{model}"
    if path.startswith("/v1/backends/"):
        return "/v1/backends/{backend}/canary"
    return "other"


def sheddable(method: str, path: str) -> bool:
    """Prediction requests (never probes, metrics or pages: a saturated gateway still answers those)."""
    return method == "POST" and (
        path.startswith("/v1/predict") or path == "/v1/compare" or (path.startswith("/v2/") and path.endswith("/infer"))
    )


# A multipart body carries the file plus its part headers and boundaries: allowed this much more
# than the image limit, so an image of exactly the limit is accepted (the route checks the file).
MULTIPART_OVERHEAD = 64 * 1024
CLOSE = (b"connection", b"close")


class BodyTooLarge(APIError):
    """More bytes arrived than the limit allows (raised from ``receive``; rendered by the app)."""

    def __init__(self, limit: int, what: str):
        super().__init__(413, "body_too_large", f"request body exceeds the limit of {limit} bytes for {what}")
        self.headers = {"Connection": "close"}  # the rest of the body is never read


class GatewayMiddleware:
    """``max_body_bytes`` bounds JSON (and any other) bodies, ``max_image_bytes`` multipart uploads."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: GatewayMetrics,
        max_body_bytes: int,
        max_image_bytes: int,
        lag: LoopLag | None,
        hot: HotRoutes | None = None,
    ):
        self.app, self.metrics, self.max_body_bytes, self.lag, self.hot = app, metrics, max_body_bytes, lag, hot
        self.max_upload_bytes = max_image_bytes + MULTIPART_OVERHEAD
        self.active = 0  # requests in progress (the door sheds only when many are)
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

        self.active += 1
        try:
            lag = self.lag
            if lag is not None and lag.pressure and sheddable(scope["method"], scope["path"]) and lag.shed(self.active):
                scope.setdefault("state", {})["shed"] = "gateway_lag"
                self.metrics.shed("gateway", "gateway_lag")
                await _reject(
                    send_wrapper, scope["path"], 503, "gateway_overloaded",
                    "the gateway itself is at capacity (its event loop lags); retry later", retry_after=True,
                )  # fmt: skip
                return
            limit = self.max_upload_bytes if multipart else self.max_body_bytes
            what = "an upload (the image limit plus multipart framing)" if multipart else "a JSON body"
            if length is None:
                receive = _counted(receive, limit, what)
            elif length.isdigit() and int(length) > limit:
                await _reject(
                    send_wrapper, scope["path"], 413, "body_too_large",
                    f"request body of {int(length)} bytes exceeds the limit of {limit} bytes for {what}",
                )  # fmt: skip
                return
            endpoint = self.hot.match(scope) if self.hot is not None else None
            if endpoint is not None:
                await self.hot.serve(endpoint, scope, receive, send_wrapper)  # type: ignore[union-attr]
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            self.active -= 1
            state = scope.get("state")
            backend = state.get("backend", "-") if state else "-"
            elapsed = time.perf_counter() - start
            self.metrics.observe_request(_route(scope["path"]), backend, status, elapsed)
            if state and "shed" in state:
                self.metrics.observe_shed(state["shed"], elapsed)
            request_id.reset(token)


def _counted(receive: Receive, limit: int, what: str) -> Receive:
    """``receive`` counting the body's bytes (a body sent without Content-Length)."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit, what)
        return message

    return counted


async def _reject(send: Any, path: str, status: int, type_: str, message: str, *, retry_after: bool = False) -> None:
    body = orjson.dumps(shaped(path, status, {"error": {"status": status, "type": type_, "message": message}}))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    else:  # refused for its body: close rather than read the rest of it
        headers.append(CLOSE)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
