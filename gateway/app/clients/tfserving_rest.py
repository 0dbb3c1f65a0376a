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
    http_client,
    http_error,
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
        self._client = http_client(timeout)
        self._status_timeout = status_timeout
        self._version = ""

    async def predict(self, rows: np.ndarray) -> Prediction:
        body = orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
        request = self._client.build_request(
            "POST", self._predict_url, content=body, headers={"Content-Type": "application/json"}
        )
        r = await call_http(self.name, request, self._client)
        payload = _json(self.name, r.content)
        if r.status_code != 200:
            message = payload.get("error", r.text[:200]) if isinstance(payload, dict) else r.text[:200]
            raise http_error(self.name, r.status_code, str(message))
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
            r = await self._client.get(self._model_url, timeout=self._status_timeout)
        except Exception as exc:
            return Status(False, detail=f"unreachable: {type(exc).__name__}")
        implementation = "standin" if r.headers.get(STANDIN_HEADER) == "standin" else "real"
        try:
            states = r.json()["model_version_status"]
        except (ValueError, KeyError, TypeError):
            return Status(False, implementation=implementation, detail=f"HTTP {r.status_code}")
        available = [s["version"] for s in states if s.get("state") == "AVAILABLE"]
        if available:
            self._version = max(available, key=int)
        return Status(bool(available), self._version or None, implementation)

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(backend: str, content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BackendError(backend, f"response is not JSON: {content[:80]!r}") from exc
