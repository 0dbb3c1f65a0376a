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
    max_abs_probability_diff: float | None = Field(None, description="largest difference between two answers")
    input: list[list[float]] | None = None


class Backend(BaseModel):
    name: str
    protocol: str = Field(description="rest or grpc")
    address: str
    ready: bool
    model_version: str | None
    circuit: str = Field(description="closed, open or half-open")
    route_weight: float
    in_flight: int = Field(description="calls in flight now (admission limit: GATEWAY_ADMISSION_LIMIT)")
    waiting: int = Field(description="calls waiting for a slot now")
    implementation: str | None = Field(None, description="TF Serving: real or standin")
    detail: str | None = None


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


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` entries: the project's error body for each status a route can return."""
    what = {
        400: "bad JSON, an unknown backend or an invalid header",
        401: "an API key is required (when GATEWAY_API_KEYS is set)",
        413: "the body, image or row count is over its limit",
        415: "wrong Content-Type, or a file that is not a supported image",
        422: "well-formed but unusable: wrong shape, values out of [0, 1], a blank image",
        429: "this client is over its share of a busy backend (GATEWAY_CLIENT_SHARE < 1); see Retry-After",
        502: "the backend answered with an error or garbage",
        503: "the backend is down, its circuit is open, or it is at capacity (overloaded); see Retry-After",
        504: "the backend did not answer in time, or the client's X-Request-Timeout-Ms passed",
    }
    return {s: {"model": ErrorResponse, "description": what[s]} for s in statuses}


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


def operation(body: dict[str, Any], *, deadline: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a prediction route: its body, and the deadline header it reads."""
    return {**body, "parameters": [DEADLINE_PARAMETER]} if deadline else body
