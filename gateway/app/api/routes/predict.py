"""``/v1/predict`` (JSON rows) and ``/v1/predict/image`` (an uploaded digit)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from gateway.app.api.deps import client_of, dataplane_of, deadline_of, settings_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.inputs import image_row, json_rows
from gateway.app.api.schemas import Prediction, PredictRequest, errors, image_body, json_body, operation
from mnist_serving.spec import BACKENDS

router = APIRouter(prefix="/v1", tags=["predict"])

BACKEND_HELP = "a server, or auto: the routing policy (GATEWAY_ROUTE_WEIGHTS), falling back when its choice fails"
BACKEND_SCHEMA = {"enum": ["auto", *BACKENDS]}
INPUT_HELP = "also return the 28x28 image the model received"
PREDICT_ERRORS = errors(400, 401, 413, 415, 422, 429, 502, 503, 504)


@router.post(
    "/predict",
    response_class=ORJSONResponse,
    responses={200: {"model": Prediction, "description": "probabilities and labels, one per row"}, **PREDICT_ERRORS},
    openapi_extra=operation(json_body(PredictRequest)),
)
async def predict(
    request: Request, backend: str = Query("auto", description=BACKEND_HELP, json_schema_extra=BACKEND_SCHEMA)
) -> ORJSONResponse:
    """Classify rows: ``{"instances": [row, ...]}``, a row being 784 numbers in [0, 1] or 28 rows of 28.
    Content-Type: application/json (or none)."""
    dp = dataplane_of(request)
    dp.check_backend(backend)
    deadline = deadline_of(request)
    rows = await json_rows(request, settings_of(request))
    client = client_of(request) if dp.shares_enforced else ""
    result = await dp.infer(backend, rows.array, rows.json, deadline=deadline, client=client)
    request.state.backend = result.backend
    return ORJSONResponse(result.as_dict())


@router.post(
    "/predict/image",
    response_class=ORJSONResponse,
    responses={200: {"model": Prediction, "description": "the digit's probabilities and label"}, **PREDICT_ERRORS},
    openapi_extra=operation(image_body()),
)
async def predict_image(
    request: Request,
    backend: str = Query("auto", description=BACKEND_HELP, json_schema_extra=BACKEND_SCHEMA),
    include_input: bool = Query(False, description=INPUT_HELP),
) -> ORJSONResponse:
    """Classify one uploaded image (multipart/form-data, field ``file``), preprocessed MNIST-style:
    fit into a 20-pixel box on 28x28 and centred by mass; a blank image is 422 blank_image."""
    dp = dataplane_of(request)
    dp.check_backend(backend)
    deadline = deadline_of(request)
    image = await image_row(request, settings_of(request))
    client = client_of(request) if dp.shares_enforced else ""
    result = await dp.infer(backend, image.reshape(1, -1), deadline=deadline, client=client)
    request.state.backend = result.backend
    body = result.as_dict()
    if include_input:
        body["input"] = image
    return ORJSONResponse(body)
