"""TF Serving over REST: ``POST /v1/models/{m}[/labels/{l}]:predict`` in row format."""

from __future__ import annotations

import numpy as np
import orjson

from gateway.app.clients.base import (
    BackendError,
    Prediction,
    Status,
    call_http,
    check_probabilities,
    http_error,
    http_session,
)
from mnist_serving.spec import OUTPUT_NAME

STANDIN_HEADER = "x-tfserving-implementation"


class TFServingRESTClient:
    protocol = "rest"

    def __init__(self, name: str, url: str, model: str, label: str, timeout: float, status_timeout: float):
        self.name, self.address = name, url
        base = f"{url.rstrip('/')}/v1/models/{model}"
        self._model_url = f"{base}/labels/{label}" if label else base
        self._predict_url = f"{self._model_url}:predict"
        self._session = http_session(timeout)
        self._status_timeout = status_timeout
        self._version = ""

    async def predict(self, rows: np.ndarray) -> Prediction:
        body = orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
        r = await call_http(self.name, self._session, "POST", self._predict_url, body)
        payload = _json(self.name, r.content)
        if r.status != 200:
            message = payload.get("error", "") if isinstance(payload, dict) else ""
            raise http_error(self.name, r.status, str(message) or repr(r.content[:200]))
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
            r = await call_http(self.name, self._session, "GET", self._model_url, timeout=self._status_timeout)
        except BackendError as exc:
            return Status(False, detail=exc.message)
        implementation = "standin" if r.headers.get(STANDIN_HEADER) == "standin" else "real"
        try:
            states = orjson.loads(r.content)["model_version_status"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Status(False, implementation=implementation, detail=f"HTTP {r.status}")
        available = [s["version"] for s in states if s.get("state") == "AVAILABLE"]
        if available:
            self._version = max(available, key=int)
        return Status(bool(available), self._version or None, implementation)

    async def aclose(self) -> None:
        await self._session.close()


def _json(backend: str, content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BackendError(backend, f"response is not JSON: {content[:80]!r}") from exc
