"""``/v1/predict`` (JSON rows) and ``/v1/predict/image`` (an uploaded digit).

Each endpoint is a plain function of the request (``Incoming``): read the parameters strictly,
decode, call the data plane once, encode. The FastAPI routes below call them (and declare them in
the OpenAPI document); api/hot.py calls ``predict`` directly for the traffic, without FastAPI's
per-request machinery.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway.app.api.deps import budget_of, dataplane_of, principal_of, settings_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.incoming import Incoming
from gateway.app.api.inputs import image_row, json_rows
from gateway.app.api.params import boolean, read
from gateway.app.api.schemas import Prediction, PredictRequest, errors, image_body, json_body, operation, query
from mnist_serving.spec import BACKENDS

router = APIRouter(prefix="/v1", tags=["predict"])

BACKEND_HELP = "a server, or auto: the routing policy (GATEWAY_ROUTE_WEIGHTS), falling back when its choice fails"
BACKEND_PARAM = query("backend", BACKEND_HELP, {"enum": ["auto", *BACKENDS], "default": "auto"})
INPUT_PARAM = query(
    "include_input", "also return the 28x28 image the model received", {"type": "boolean", "default": False}
)
PREDICT_ERRORS = errors(400, 401, 413, 415, 422, 429, 502, 503, 504)
VERSION_PARAM = query(
    "version",
    "a model version (a number, or a TF Serving label such as stable); default: the backend's default, "
    "or its canary for the share of clients the canary takes",
    {"type": "string"},
)
PREDICT_PARAMS = {"backend": "auto", "version": ""}
IMAGE_PARAMS = {"backend": "auto", "version": "", "include_input": "false"}


async def predict(incoming: Incoming) -> dict[str, Any]:
    """Rows in, probabilities out."""
    params = read(incoming.query, PREDICT_PARAMS)
    dp, settings = dataplane_of(incoming), settings_of(incoming)
    backend = dp.check_backend(params["backend"])
    budget = budget_of(incoming.headers, settings)
    principal = principal_of(incoming) if dp.needs_principal else ""
    dp.precheck(backend, principal)  # before the body is read
    rows = await json_rows(incoming, settings, budget.at)
    version = params["version"] or None
    result = await dp.infer(backend, rows.array, rows.json, budget=budget, principal=principal, version=version)
    incoming.state["backend"] = result.backend
    return result.as_dict()


async def predict_image(incoming: Incoming) -> dict[str, Any]:
    """One uploaded image in, its digit's probabilities out."""
    params = read(incoming.query, IMAGE_PARAMS)
    dp, settings = dataplane_of(incoming), settings_of(incoming)
    backend = dp.check_backend(params["backend"])
    include_input = boolean("include_input", params["include_input"])
    budget = budget_of(incoming.headers, settings)
    principal = principal_of(incoming) if dp.needs_principal else ""
    dp.precheck(backend, principal)  # before the upload is read and decoded
    image = await image_row(incoming, settings, incoming.scope["app"].state.image_decoder)
    version = params["version"] or None
    result = await dp.infer(backend, image.reshape(1, -1), budget=budget, principal=principal, version=version)
    incoming.state["backend"] = result.backend
    body = result.as_dict()
    if include_input:
        body["input"] = image
    return body


@router.post(
    "/predict",
    response_class=ORJSONResponse,
    responses={200: {"model": Prediction, "description": "probabilities and labels, one per row"}, **PREDICT_ERRORS},
    openapi_extra=operation(json_body(PredictRequest), BACKEND_PARAM, VERSION_PARAM),
)
async def predict_route(request: Request) -> ORJSONResponse:
    """Classify rows: ``{"instances": [row, ...]}``, a row being 784 numbers in [0, 1] or 28 rows of 28.
    Content-Type: application/json (or none)."""
    return ORJSONResponse(await predict(Incoming.of(request)))


@router.post(
    "/predict/image",
    response_class=ORJSONResponse,
    responses={200: {"model": Prediction, "description": "the digit's probabilities and label"}, **PREDICT_ERRORS},
    openapi_extra=operation(image_body(), BACKEND_PARAM, VERSION_PARAM, INPUT_PARAM),
)
async def predict_image_route(request: Request) -> ORJSONResponse:
    """Classify one uploaded image (multipart/form-data, field ``file``), preprocessed MNIST-style:
    fit into a 20-pixel box on 28x28 and centred by mass; a blank image is 422 blank_image."""
    return ORJSONResponse(await predict_image(Incoming.of(request)))
