"""``/v1/backends``: what the gateway routes to, and whether each is ready."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.app.api.deps import dataplane_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.schemas import BackendsResponse, errors

router = APIRouter(prefix="/v1", tags=["backends"])


@router.get(
    "/backends",
    response_class=ORJSONResponse,
    responses={200: {"model": BackendsResponse, "description": "every backend"}, **errors(401)},
)
async def backends(request: Request) -> ORJSONResponse:
    """Each backend: address, protocol, model version, readiness, circuit, calls in flight and waiting."""
    return ORJSONResponse({"backends": await dataplane_of(request).backends()})
