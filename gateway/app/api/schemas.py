"""What the OpenAPI document says the routes take and give. Documentation only: the routes read raw
bodies (protocol/rows.py validates faster than a per-float model, gateway/benchmarks/validation.py)
and encode with orjson, so nothing here runs per request. A test checks real requests and answers
against these schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, JsonValue

from mnist_serving.spec import (
    IMAGE_SIDE,
    INPUT_DIM,
    MAX_IMAGE_BYTES,
    MAX_JSON_BODY_BYTES,
    MAX_ROWS_PER_REQUEST,
    NUM_CLASSES,
    UNCERTAIN_BELOW,
)

# A real MNIST test digit (a 9), so "Try it out" in /docs answers with a real label.
_EXAMPLE = json.loads((Path(__file__).parent / "example_digit.json").read_text())
_ROW_EXAMPLE: list[JsonValue] = _EXAMPLE["row"]
_PROBS_EXAMPLE: list[JsonValue] = [0.0, 0.0, 0.0001, 0.0012, 0.0153, 0.0004, 0.0, 0.0085, 0.0021, 0.9724]

Row = list[float] | list[list[float]]


class PredictRequest(BaseModel):
    """Rows to classify. The body may be up to the JSON limit (4 MiB by default)."""

    instances: list[Row] = Field(
        min_length=1,
        max_length=MAX_ROWS_PER_REQUEST,
        description=(
            f"1 to {MAX_ROWS_PER_REQUEST} rows; a row is {INPUT_DIM} numbers in [0, 1] (row-major, white digit on "
            f"black, as MNIST) or {IMAGE_SIDE} rows of {IMAGE_SIDE}. One row still goes in a list: "
            '{"instances": [row]}. The body may be up to '
            f"{MAX_JSON_BODY_BYTES} bytes (GATEWAY_MAX_BODY_BYTES)."
        ),
        json_schema_extra={"examples": [[_ROW_EXAMPLE]]},
    )


class Prediction(BaseModel):
    backend: str = Field(description="the server that answered: tfserving, torchserve or torchserve-onnx")
    model_version: str
    predictions: list[list[float]] = Field(description=f"{NUM_CLASSES} probabilities per row, summing to 1")
    labels: list[int] = Field(description="the most probable digit per row")
    uncertain: list[bool] = Field(
        description=f"per row: the top probability is below {UNCERTAIN_BELOW} (mnist_serving/spec.py), where "
        "digits are rarely read and letters, shapes and noise usually are: treat the label as a guess"
    )
    latency_ms: float = Field(description="time spent on the backend call, in the gateway")
    fallback_from: str | None = Field(None, description="auto only: the server that failed first")
    input: list[list[float]] | None = Field(
        None, description=f"include_input=true: the {IMAGE_SIDE}x{IMAGE_SIDE} image the model received"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "backend": "torchserve",
                    "model_version": "1",
                    "predictions": [_PROBS_EXAMPLE],
                    "labels": [_EXAMPLE["label"]],
                    "uncertain": [False],
                    "latency_ms": 3.1,
                }
            ]
        }
    }


class ErrorDetail(BaseModel):
    status: int = Field(description="the HTTP status again")
    type: str = Field(description="a stable machine-readable kind, listed in docs/gateway.md#errors")
    message: str = Field(description="what is wrong and how to fix it")
    backend: str | None = Field(None, description="5xx from a backend: which one")


class ErrorResponse(BaseModel):
    error: ErrorDetail

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": {
                        "status": 422,
                        "type": "unwrapped_row",
                        "message": '"instances" holds 784 numbers, not rows: wrap the row in a list, '
                        '{"instances": [row]}',
                    }
                }
            ]
        }
    }


class BackendError(BaseModel):
    backend: str
    error: ErrorDetail


class CompareResponse(BaseModel):
    results: dict[str, Prediction | BackendError] = Field(description="per backend: its answer or its error")
    labels_agree: bool | None = Field(description="null when fewer than two answered")
    disagreeing_rows: list[int] | None = Field(None, description="the rows whose labels differ between backends")
    max_abs_probability_diff: float | None = Field(None, description="largest difference between two answers")
    max_abs_probability_diff_row: int | None = Field(None, description="the row where that difference is")
    input: list[list[float]] | None = None


class Backend(BaseModel):
    name: str
    protocol: str = Field(description="rest or grpc")
    address: str
    ready: bool
    model_version: str | None = Field(description="the version a request without one goes to")
    versions: list[str] = Field(description="every version loaded and serving")
    labels: dict[str, str] = Field(description="TF Serving's version labels: label -> version")
    canary: CanaryRequest | None = Field(description="the canary split, when one is set")
    circuit: str = Field(description="closed, open or half-open")
    route_weight: float
    in_flight: int = Field(description="calls in flight now")
    in_flight_rows: float = Field(description="rows in flight now (a request's cost is its rows)")
    limit_rows: float = Field(description="the adaptive limit: rows the gateway lets this backend work on at once")
    waiting: int = Field(description="calls waiting for a slot now")
    implementation: str | None = Field(None, description="the server: real, or the TF Serving stand-in")
    detail: str | None = None


class CanaryRequest(BaseModel):
    version: str = Field(description="a version the backend has loaded (a number, or a TF Serving label)")
    percent: float = Field(ge=0, le=100, description="the share of clients sent to it, sticky per client")


class CanaryResponse(BaseModel):
    backend: str
    version: str | None
    percent: float


class V2Tensor(BaseModel):
    name: str = Field(description="pixels")
    shape: list[int] = Field(description=f"[N, {INPUT_DIM}] or [N, {IMAGE_SIDE}, {IMAGE_SIDE}]")
    datatype: str = Field(description="FP32")
    data: list[float] | None = Field(None, description="row-major values in [0, 1] (or binary, after the JSON)")
    parameters: dict[str, JsonValue] | None = Field(None, description="binary_data_size: the tensor is binary")


class V2Output(BaseModel):
    name: str = Field(description="probabilities, label or uncertain")
    parameters: dict[str, JsonValue] | None = Field(None, description="binary_data: answer it as binary")


class V2InferRequest(BaseModel):
    """An Open Inference Protocol (KServe v2) inference request."""

    id: str | None = None
    parameters: dict[str, JsonValue] | None = Field(None, description="binary_data_output: every output binary")
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1)
    outputs: list[V2Output] | None = Field(None, description="the outputs to answer (default: all)")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"inputs": [{"name": "pixels", "shape": [1, INPUT_DIM], "datatype": "FP32", "data": _ROW_EXAMPLE}]}
            ]
        }
    }


class V2OutputTensor(BaseModel):
    name: str
    datatype: str = Field(description="FP32 (probabilities), INT64 (label), BOOL (uncertain)")
    shape: list[int]
    data: list[float | int | bool] | None = Field(None, description="absent when the output is binary")
    parameters: dict[str, JsonValue] | None = Field(None, description="binary_data_size: where it is binary")


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str = Field(description="the version that computed the answer")
    id: str | None = None
    outputs: list[V2OutputTensor]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(description="every version loaded and serving")
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class BackendsResponse(BaseModel):
    backends: list[Backend]


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    ready: bool
    ready_backends: list[str]


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """An ``openapi_extra`` request body for a route that reads its JSON body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        }
    }


IMAGE_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": (
                f"PNG, JPEG, GIF, BMP, WEBP or TIFF, up to {MAX_IMAGE_BYTES} bytes (GATEWAY_MAX_IMAGE_BYTES): a dark "
                "digit on light paper (a photo or scan) or a white-on-black 28x28 MNIST image"
            ),
        }
    },
}


def image_body(also_json: type[BaseModel] | None = None) -> dict[str, Any]:
    """An ``openapi_extra`` request body for an image upload (and JSON rows, where a route takes both)."""
    content: dict[str, Any] = {"multipart/form-data": {"schema": IMAGE_FORM}}
    if also_json is not None:
        content["application/json"] = {"schema": also_json.model_json_schema()}
    return {"requestBody": {"required": True, "content": content}}


class V2ErrorResponse(BaseModel):
    """The Open Inference Protocol's error body, with the gateway's stable type beside it."""

    error: str = Field(description="what is wrong and how to fix it")
    type: str = Field(description="a stable machine-readable kind, listed in docs/gateway.md#errors")
    status: int


def errors(*statuses: int, v2: bool = False) -> dict[int | str, dict[str, Any]]:
    """``responses`` entries: the project's error body (v2: the protocol's) for each status a route can return."""
    what = {
        400: "bad JSON, an unknown backend or an invalid header",
        401: "an API key is required (when GATEWAY_API_KEYS is set)",
        403: "this key may not change routing (GATEWAY_ADMIN_KEYS)",
        404: "no such model or model version",
        413: "the body, image or row count is over its limit",
        415: "wrong Content-Type, or a file that is not a supported image",
        422: "well-formed but unusable: wrong shape, values out of [0, 1], a blank image",
        429: "this client is over its share of a busy backend (GATEWAY_CLIENT_SHARE < 1); see Retry-After",
        502: "the backend answered with an error or garbage",
        503: "the backend is down, its circuit is open, or it is at capacity (overloaded); see Retry-After",
        504: "the backend did not answer in time, or the client's X-Request-Timeout-Ms passed",
    }
    model = V2ErrorResponse if v2 else ErrorResponse
    return {s: {"model": model, "description": what[s]} for s in statuses}


DEADLINE_PARAMETER: dict[str, Any] = {
    "name": "X-Request-Timeout-Ms",
    "in": "header",
    "required": False,
    "schema": {"type": "number", "minimum": 0},
    "description": (
        "your deadline in milliseconds from now: past it the answer is 504 deadline_exceeded, and a "
        "deadline already passed never reaches a backend"
    ),
}


def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter as the OpenAPI document states it (the routes read their parameters
    themselves, strictly: api/params.py)."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def operation(body: dict[str, Any], *params: dict[str, Any], deadline: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a prediction route: its body, its query parameters, and the deadline
    header it reads."""
    return {**body, "parameters": [*params, *([DEADLINE_PARAMETER] if deadline else [])]}
