"""Liveness, readiness and Prometheus metrics (unauthenticated, as probes and scrapers expect)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.app.api.deps import dataplane_of
from gateway.app.api.encode import ORJSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_class=ORJSONResponse)
async def healthz() -> ORJSONResponse:
    return ORJSONResponse({"status": "ok"})


@router.get("/readyz", response_class=ORJSONResponse)
async def readyz(request: Request) -> ORJSONResponse:
    backends = await dataplane_of(request).backends()
    ready = [b["name"] for b in backends if b["ready"]]
    return ORJSONResponse({"ready": bool(ready), "ready_backends": ready}, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
