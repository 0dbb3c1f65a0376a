"""``/v1/backends``: what the gateway routes to, and whether each is ready."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway.app.api.deps import DataPlaneDep, require_api_key
from gateway.app.api.encode import ORJSONResponse

router = APIRouter(prefix="/v1", tags=["backends"], dependencies=[Depends(require_api_key)])


@router.get("/backends", response_class=ORJSONResponse)
async def backends(dp: DataPlaneDep) -> ORJSONResponse:
    return ORJSONResponse({"backends": await dp.backends()})
