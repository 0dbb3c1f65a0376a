"""``/v1/compare``: the same input to several backends at once, side by side."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from gateway.app.api.deps import dataplane_of, deadline_of, settings_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.inputs import content_type, image_row, json_rows
from gateway.app.api.schemas import CompareResponse, PredictRequest, errors, image_body, operation
from gateway.app.core.errors import bad_request

router = APIRouter(prefix="/v1", tags=["compare"])

DEFAULT_BACKENDS = "tfserving,torchserve"


@router.post(
    "/compare",
    response_class=ORJSONResponse,
    responses={
        200: {"model": CompareResponse, "description": "each backend's answer or error, and whether they agree"},
        **errors(400, 401, 413, 415, 422, 503),
    },
    openapi_extra=operation(image_body(also_json=PredictRequest)),
)
async def compare(
    request: Request,
    backends: str = Query(DEFAULT_BACKENDS, description="comma-separated backends to compare"),
    include_input: bool = Query(False, description="with an image: return the 28x28 model input"),
) -> ORJSONResponse:
    """The same input to several backends at once: JSON ``{"instances": ...}`` or a multipart image
    upload (field ``file``). 503 only when no backend answered."""
    dp, settings = dataplane_of(request), settings_of(request)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    if len(names) < 2 or len(set(names)) != len(names) or "auto" in names:
        raise bad_request("bad_backends", "name at least two distinct backends (not auto), comma-separated")
    for name in names:
        dp.check_backend(name)
    deadline = deadline_of(request)
    image = None
    if content_type(request) == "multipart/form-data":
        image = await image_row(request, settings)
        rows, json_body = image.reshape(1, -1), None
    else:
        instances = await json_rows(request, settings)
        rows, json_body = instances.array, instances.json
    request.state.backend = "+".join(names)
    body = await dp.compare(rows, names, json_body, deadline=deadline)
    if include_input and image is not None:
        body["input"] = image
    return ORJSONResponse(body)
