"""The REST API on TF Serving's paths; errors are ``{"error": "..."}`` with TF Serving's status codes."""

from __future__ import annotations

import re
import time
from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.tfserving_standin import IMPLEMENTATION, IMPLEMENTATION_HEADER, metrics
from serving.tfserving_standin.codec import decode_predict, encode_predict
from serving.tfserving_standin.errors import ServingError, invalid, not_found
from serving.tfserving_standin.manager import ModelManager, VersionStatus

_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?:/(?P<metadata>metadata)|:(?P<verb>predict|classify|regress))?$"
)
_HEADERS = {IMPLEMENTATION_HEADER: IMPLEMENTATION}


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status, _HEADERS, media_type="application/json"
    )


def _error(exc: ServingError) -> Response:
    return _json({"error": exc.message}, exc.http_status)


def build_app(manager: ModelManager, metrics_path: str | None) -> Starlette:
    def version_status(statuses: list[VersionStatus]) -> dict[str, Any]:
        return {
            "model_version_status": [
                {
                    "version": str(s.version),
                    "state": s.state.name,
                    "status": {"error_code": "UNKNOWN" if s.error else "OK", "error_message": s.error},
                }
                for s in statuses
            ]
        }

    def metadata(name: str, version: int | None, label: str | None) -> dict[str, Any]:
        servable = manager.resolve(name, version, label)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for k, v in servable.signature_defs.items():
            sig_map.signature_def[k].CopyFrom(v)
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": json_format.MessageToDict(sig_map, preserving_proto_field_name=True)},
        }

    async def predict(request: Request, name: str, version: int | None, label: str | None) -> Response:
        start = time.perf_counter()
        status = "OK"
        try:
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError as exc:
                raise invalid(f"JSON Parse error: {exc}") from exc
            servable = manager.resolve(name, version, label)
            signature_name = body.get("signature_name", "") if isinstance(body, dict) else ""
            sig = servable.signature(signature_name)
            inputs, row_format = decode_predict(body, sig.input_names)
            outputs = await manager.predict(servable, signature_name, inputs, [], "predict")
            return _json(encode_predict(outputs, row_format))
        except ServingError as exc:
            status = exc.code.name
            return _error(exc)
        finally:
            metrics.request_count.labels(name, status, "REST").inc()
            metrics.request_latency.labels(name, "predict", "REST").observe((time.perf_counter() - start) * 1e6)

    async def dispatch(request: Request) -> Response:
        path = request.url.path
        if metrics_path and path == metrics_path and request.method == "GET":
            return Response(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
        m = _MODEL_PATH.match(path)
        if m is None:
            return _error(not_found(f"Malformed request: {request.method} {path}"))
        name, label, verb = m["name"], m["label"], m["verb"]
        version = int(m["version"]) if m["version"] else None
        try:
            if verb == "predict" and request.method == "POST":
                return await predict(request, name, version, label)
            if verb is not None:
                raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{request.method} :{verb} is not supported here")
            if request.method != "GET":
                raise invalid(f"Malformed request: {request.method} {path}")
            if m["metadata"]:
                return _json(metadata(name, version, label))
            return _json(version_status(manager.status(name, version, label)))
        except ServingError as exc:
            return _error(exc)

    return Starlette(routes=[Route("/{path:path}", dispatch, methods=["GET", "POST"])])
