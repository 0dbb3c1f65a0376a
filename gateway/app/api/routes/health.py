"""Liveness, readiness and Prometheus metrics (unauthenticated, as probes and scrapers expect)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.app.api.deps import dataplane_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_class=ORJSONResponse, responses={200: {"model": Health}})
async def healthz() -> ORJSONResponse:
    """Liveness: the gateway process answers."""
    return ORJSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_class=ORJSONResponse,
    responses={200: {"model": Ready}, 503: {"model": Ready, "description": "no backend is ready"}},
)
async def readyz(request: Request) -> ORJSONResponse:
    """Readiness: at least one backend has its model loaded."""
    backends = await dataplane_of(request).backends()
    ready = [b["name"] for b in backends if b["ready"]]
    return ORJSONResponse({"ready": bool(ready), "ready_backends": ready}, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text format (version 0.0.4)."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
