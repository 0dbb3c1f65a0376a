"""One error shape for every failure: ``{"error": {"status", "type", "message"}}``."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    def __init__(self, status: int, type_: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.type, self.message, self.extra = status, type_, message, extra
        self.headers: dict[str, str] = {}  # response headers beside the body (Retry-After on refusals)

    def body(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "type": self.type, "message": self.message, **self.extra}}


def is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def shaped(path: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the route at ``path`` answers errors: the Open Inference Protocol's
    ``{"error": "<message>"}`` (with ``type`` and ``status`` beside it) on /v2 routes, the
    gateway's own shape elsewhere. One place, so the middleware's refusals match the routes'."""
    if not is_v2(path):
        return body
    error = body["error"]
    return {"error": error["message"], "type": error["type"], "status": status}


def bad_request(type_: str, message: str) -> APIError:
    return APIError(400, type_, message)


def unprocessable(type_: str, message: str) -> APIError:
    return APIError(422, type_, message)


def too_large(type_: str, message: str) -> APIError:
    return APIError(413, type_, message)


def unsupported(type_: str, message: str) -> APIError:
    return APIError(415, type_, message)
