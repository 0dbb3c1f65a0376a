"""``/v1/predict`` (JSON rows) and ``/v1/predict/image`` (an uploaded digit)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from gateway.app.api.deps import dataplane_of, settings_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.inputs import image_row, json_rows

router = APIRouter(prefix="/v1", tags=["predict"])

BACKEND_HELP = "tfserving, torchserve, torchserve-onnx, or auto (routing policy with fallback)"
INPUT_HELP = "also return the 28x28 image the model received"


@router.post("/predict", response_class=ORJSONResponse)
async def predict(request: Request, backend: str = Query("auto", description=BACKEND_HELP)) -> ORJSONResponse:
    """Body: ``{"instances": [row, ...]}``, a row being 784 numbers in [0, 1] or 28 rows of 28."""
    dp = dataplane_of(request)
    dp.check_backend(backend)
    rows = await json_rows(request, settings_of(request))
    result = await dp.infer(backend, rows.array, rows.json)
    request.state.backend = result.backend
    return ORJSONResponse(result.as_dict())


@router.post("/predict/image", response_class=ORJSONResponse)
async def predict_image(
    request: Request,
    backend: str = Query("auto", description=BACKEND_HELP),
    include_input: bool = Query(False, description=INPUT_HELP),
) -> ORJSONResponse:
    """Multipart upload, field ``file``: PNG, JPEG, GIF, BMP, WEBP or TIFF, preprocessed MNIST-style."""
    dp = dataplane_of(request)
    dp.check_backend(backend)
    image = await image_row(request, settings_of(request))
    result = await dp.infer(backend, image.reshape(1, -1))
    request.state.backend = result.backend
    body = result.as_dict()
    if include_input:
        body["input"] = image
    return ORJSONResponse(body)
