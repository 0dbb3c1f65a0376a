"""Typed dependencies for the routes. All async: FastAPI runs a plain `def` dependency in a threadpool."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from gateway.app.core.config import Settings
from gateway.app.core.errors import APIError, too_large
from gateway.app.dataplane import DataPlane


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_dataplane(request: Request) -> DataPlane:
    return request.app.state.dataplane


SettingsDep = Annotated[Settings, Depends(get_settings)]
DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Open when no keys are configured; else ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    keys = settings.api_key_set
    if not keys:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not given or not any(hmac.compare_digest(given, k) for k in keys):
        raise APIError(401, "unauthorized", "a valid API key is required (Authorization: Bearer or X-API-Key)")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes whether or not Content-Length was sent."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("body_too_large", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
