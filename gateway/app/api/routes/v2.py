"""The Open Inference Protocol (KServe v2) over REST, so clients, SDKs and load tools written for
Triton, KServe or MLServer talk to the gateway unchanged (tested with Triton's own client).

One model per backend (``mnist-tfserving``, ``mnist-torchserve``, ``mnist-torchserve-onnx``) and ``mnist``
for the gateway's routing policy; each is served through the same data plane, limits, admission and
errors as /v1. Errors follow the protocol: ``{"error": "<message>"}``, with the gateway's ``type`` beside it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.app.api.deps import budget_of, dataplane_of, one_header, principal_of, settings_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.incoming import Incoming
from gateway.app.api.params import read
from gateway.app.api.schemas import (
    V2InferRequest,
    V2InferResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
    errors,
    json_body,
    operation,
)
from gateway.app.core.errors import APIError
from gateway.app.protocol import v2
from mnist_serving import oip

TAGS: list[str | Enum] = ["open inference protocol (v2)"]
router = APIRouter(prefix="/v2", tags=TAGS)  # the models: behind the API keys, when set
health = APIRouter(prefix="/v2", tags=TAGS)  # liveness, readiness, server metadata: open, as probes expect
GATEWAY_VERSION = "1.0"


def _model(incoming: Incoming) -> tuple[str, str, str | None]:
    """(model name, backend, version or None) from the path."""
    params = incoming.scope["path_params"]
    name = params["model"]
    return name, v2.known_model(name, oip.MODELS), params.get("version")


async def infer(incoming: Incoming) -> tuple[bytes, dict[str, str]]:
    """The v2 infer route: the request's tensors in, the model's out (JSON or binary)."""
    read(incoming.query, {})
    dp, settings = dataplane_of(incoming), settings_of(incoming)
    name, backend, version = _model(incoming)
    budget = budget_of(incoming.headers, settings)
    principal = principal_of(incoming) if dp.needs_principal else ""
    dp.precheck(backend, principal)  # before the body is read
    body = await incoming.body(settings.max_body_bytes, budget.at)
    length = one_header(incoming.headers, v2.HEADER_LENGTH, "Inference-Header-Content-Length")
    request = v2.decode_rest(body, length, settings.max_rows)
    result = await dp.infer(backend, request.rows, budget=budget, principal=principal, version=version)
    incoming.state["backend"] = result.backend
    return v2.encode_rest(name, result.prediction.model_version, request.id, result.prediction.probabilities,
                          request.outputs)  # fmt: skip


@health.get("", response_class=ORJSONResponse, responses={200: {"model": V2ServerMetadata}})
async def server_metadata() -> ORJSONResponse:
    """Server metadata: its name, version and protocol extensions."""
    return ORJSONResponse({"name": oip.SERVER_NAME, "version": GATEWAY_VERSION, "extensions": list(oip.EXTENSIONS)})


@health.get("/health/live", response_class=ORJSONResponse, responses={200: {"model": V2Live}})
async def live() -> ORJSONResponse:
    """Liveness: the gateway answers."""
    return ORJSONResponse({"live": True})


@health.get(
    "/health/ready",
    response_class=ORJSONResponse,
    responses={200: {"model": V2Ready}, 503: {"model": V2Ready, "description": "no backend is ready"}},
)
async def ready(request: Request) -> ORJSONResponse:
    """Readiness: at least one backend has its model loaded."""
    backends = await dataplane_of(request).backends()
    ok = any(b["ready"] for b in backends)
    return ORJSONResponse({"ready": ok}, status_code=200 if ok else 503)


async def _metadata(incoming: Incoming) -> dict[str, Any]:
    name, backend, version = _model(incoming)
    versions = await dataplane_of(incoming).versions(backend)
    if version is not None and version not in versions:
        loaded = ", ".join(versions) or "none"
        raise APIError(404, "unknown_version", f"model {name!r} has no version {version!r} loaded (loaded: {loaded})")
    inputs, outputs = v2.tensor_metadata()
    return {"name": name, "versions": versions, "platform": f"mnist-serving:{backend}", "inputs": inputs,
            "outputs": outputs}  # fmt: skip


@router.get(
    "/models/{model}",
    response_class=ORJSONResponse,
    responses={200: {"model": V2ModelMetadata}, **errors(404, 422, v2=True)},
)
async def model_metadata(request: Request, model: str) -> ORJSONResponse:
    """A model's versions, inputs and outputs."""
    return ORJSONResponse(await _metadata(Incoming.of(request)))


@router.get(
    "/models/{model}/versions/{version}",
    response_class=ORJSONResponse,
    responses={200: {"model": V2ModelMetadata}, **errors(404, 422, v2=True)},
)
async def model_version_metadata(request: Request, model: str, version: str) -> ORJSONResponse:
    """A model version's inputs and outputs."""
    return ORJSONResponse(await _metadata(Incoming.of(request)))


async def _ready(incoming: Incoming) -> ORJSONResponse:
    name, backend, version = _model(incoming)
    ok = await dataplane_of(incoming).model_ready(backend, version)
    return ORJSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)


@router.get(
    "/models/{model}/ready",
    response_class=ORJSONResponse,
    responses={200: {"model": V2ModelReady}, **errors(404, 422, 503, v2=True)},
)
async def model_ready(request: Request, model: str) -> ORJSONResponse:
    """200 when the model can answer now, 503 when not."""
    return await _ready(Incoming.of(request))


@router.get(
    "/models/{model}/versions/{version}/ready",
    response_class=ORJSONResponse,
    responses={200: {"model": V2ModelReady}, **errors(404, 422, 503, v2=True)},
)
async def model_version_ready(request: Request, model: str, version: str) -> ORJSONResponse:
    """200 when the model version can answer now, 503 when not."""
    return await _ready(Incoming.of(request))


INFER_ERRORS = {
    200: {"model": V2InferResponse, "description": "the outputs (binary ones after the JSON header)"},
    **errors(400, 401, 404, 413, 415, 422, 429, 502, 503, 504, v2=True),
}


@router.post("/models/{model}/infer", responses=INFER_ERRORS, openapi_extra=operation(json_body(V2InferRequest)))
async def infer_route(request: Request, model: str) -> Response:
    """Classify rows (Open Inference Protocol): one input ``pixels``, FP32, shape [N, 784] or [N, 28, 28]."""
    content, headers = await infer(Incoming.of(request))
    return Response(content, media_type="application/json", headers=headers)


@router.post(
    "/models/{model}/versions/{version}/infer",
    responses=INFER_ERRORS,
    openapi_extra=operation(json_body(V2InferRequest)),
)
async def infer_version_route(request: Request, model: str, version: str) -> Response:
    """Classify rows with one version of the model (a number, or a label such as ``stable``)."""
    content, headers = await infer(Incoming.of(request))
    return Response(content, media_type="application/json", headers=headers)
