"""``/v1/backends``: what the gateway routes to, and whether each is ready."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.app.api.deps import dataplane_of
from gateway.app.api.encode import ORJSONResponse

router = APIRouter(prefix="/v1", tags=["backends"])


@router.get("/backends", response_class=ORJSONResponse)
async def backends(request: Request) -> ORJSONResponse:
    return ORJSONResponse({"backends": await dataplane_of(request).backends()})
