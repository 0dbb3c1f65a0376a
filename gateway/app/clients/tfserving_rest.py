"""TF Serving over REST: ``POST /v1/models/{m}[/labels/{l}]:predict`` in row format."""

from __future__ import annotations

import numpy as np
import orjson

from gateway.app.clients.base import (
    BackendError,
    ClientSettings,
    Prediction,
    Status,
    call_http,
    check_probabilities,
    http_error,
)
from gateway.app.clients.http1 import HTTPPool
from mnist_serving.spec import OUTPUT_NAME

STANDIN_HEADER = "x-tfserving-implementation"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class TFServingRESTClient:
    protocol = "rest"

    def __init__(self, settings: ClientSettings):
        s = settings
        self.name, self.address = s.name, s.url
        model_path = f"/v1/models/{s.model}" + (f"/labels/{s.version_label}" if s.version_label else "")
        self._pool = HTTPPool(s.url, s.pool, connect_timeout=s.timeout_s)
        self._predict = self._pool.head("POST", f"{model_path}:predict")
        self._status_head = self._pool.head("GET", model_path, content_type=None)
        self._timeout, self._status_timeout = s.timeout_s, s.status_timeout_s
        self._version = ""

    async def predict(self, rows: np.ndarray, json_body: bytes | None = None) -> Prediction:
        body = json_body if json_body is not None else orjson.dumps({"instances": rows}, option=_NUMPY)
        r = await call_http(self.name, self._pool, self._predict, body, self._timeout)
        payload = _json(self.name, r.body)
        if r.status != 200:
            message = payload.get("error", "") if isinstance(payload, dict) else ""
            raise http_error(self.name, r.status, str(message) or repr(r.body[:200]))
        if not isinstance(payload, dict) or "predictions" not in payload:
            raise BackendError(self.name, "response has no 'predictions'")
        predictions = payload["predictions"]
        if predictions and isinstance(predictions[0], dict):  # several outputs: pick ours
            predictions = [p[OUTPUT_NAME] for p in predictions]
        if not self._version:  # REST predict answers carry no version: ask once, then on every status call
            await self.status()
        return Prediction(check_probabilities(self.name, predictions, len(rows)), self._version)

    async def status(self) -> Status:
        try:
            r = await call_http(self.name, self._pool, self._status_head, None, self._status_timeout)
        except BackendError as exc:
            return Status(False, detail=exc.message)
        implementation = "standin" if r.headers.get(STANDIN_HEADER) == "standin" else "real"
        try:
            states = orjson.loads(r.body)["model_version_status"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Status(False, implementation=implementation, detail=f"HTTP {r.status}")
        available = [s["version"] for s in states if s.get("state") == "AVAILABLE"]
        if available:
            self._version = max(available, key=int)
        return Status(bool(available), self._version or None, implementation)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _json(backend: str, content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BackendError(backend, f"response is not JSON: {content[:80]!r}") from exc
