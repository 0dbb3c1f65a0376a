"""``/v1/compare``: the same input to several backends at once, side by side."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway.app.api.deps import budget_of, dataplane_of, settings_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.incoming import Incoming
from gateway.app.api.inputs import image_row, json_rows
from gateway.app.api.params import boolean, read
from gateway.app.api.routes.predict import VERSION_PARAM
from gateway.app.api.schemas import CompareResponse, PredictRequest, errors, image_body, operation, query
from gateway.app.core.errors import bad_request

router = APIRouter(prefix="/v1", tags=["compare"])

DEFAULT_BACKENDS = "tfserving,torchserve"
PARAMS = {"backends": DEFAULT_BACKENDS, "version": "", "include_input": "false"}
BACKENDS_PARAM = query(
    "backends", "comma-separated backends to compare", {"type": "string", "default": DEFAULT_BACKENDS}
)
INPUT_PARAM = query(
    "include_input", "with an image: return the 28x28 model input", {"type": "boolean", "default": False}
)


async def compare(incoming: Incoming) -> dict[str, Any]:
    params = read(incoming.query, PARAMS)
    dp, settings = dataplane_of(incoming), settings_of(incoming)
    names = [b.strip() for b in params["backends"].split(",") if b.strip()]
    if len(names) < 2 or len(set(names)) != len(names) or "auto" in names:
        raise bad_request("bad_backends", "name at least two distinct backends (not auto), comma-separated")
    for name in names:
        dp.check_backend(name)
    include_input = boolean("include_input", params["include_input"])
    budget = budget_of(incoming.headers, settings)
    image = None
    if incoming.content_type == "multipart/form-data":
        image = await image_row(incoming, settings, incoming.scope["app"].state.image_decoder)
        rows, json_body = image.reshape(1, -1), None
    else:
        instances = await json_rows(incoming, settings, budget.at)
        rows, json_body = instances.array, instances.json
    incoming.state["backend"] = "+".join(names)
    body = await dp.compare(rows, names, json_body, budget=budget, version=params["version"] or None)
    if include_input and image is not None:
        body["input"] = image
    return body


@router.post(
    "/compare",
    response_class=ORJSONResponse,
    responses={
        200: {"model": CompareResponse, "description": "each backend's answer or error, and whether they agree"},
        **errors(400, 401, 413, 415, 422, 503, 504),
    },
    openapi_extra=operation(image_body(also_json=PredictRequest), BACKENDS_PARAM, VERSION_PARAM, INPUT_PARAM),
)
async def compare_route(request: Request) -> ORJSONResponse:
    """The same input to several backends at once: JSON ``{"instances": ...}`` or a multipart image
    upload (field ``file``). 503 only when no backend answered."""
    return ORJSONResponse(await compare(Incoming.of(request)))
