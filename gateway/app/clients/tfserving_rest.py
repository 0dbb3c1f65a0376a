"""TF Serving over REST: ``POST /v1/models/{m}/versions/{n}:predict`` in row format.

TF Serving's REST answers do not say which version computed them, so this client always calls a
version by number: the one asked for, the one behind a label (read from
``/v1/models/{m}/labels/{l}/metadata``, TF Serving's own resolution), or by default the one behind
``version_label`` (else the newest AVAILABLE). Every answer then names the version that computed
it. ``status`` (the data plane calls it every second) re-reads the versions and labels, so a label
moved by a rollout is followed within a second; the old version stays loaded until drained
(serving/rollout.py waits for that).
"""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import orjson

from gateway.app.clients.base import (
    BackendError,
    BackendUnavailable,
    ClientSettings,
    Prediction,
    Status,
    UnknownVersion,
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
        self._model, self._label = s.model, s.version_label
        self._pool = HTTPPool(s.url, s.pool, connect_timeout=s.timeout_s)
        self._status_head = self._pool.head("GET", f"/v1/models/{s.model}", content_type=None)
        self._timeout, self._status_timeout = s.timeout_s, s.status_timeout_s
        self._heads: dict[str, bytes] = {}  # version number -> its predict request head
        self._labels: dict[str, str] = {}  # label -> version number, as TF Serving resolved it
        self._default = ""  # the version a request without one goes to
        self._versions: tuple[str, ...] = ()  # AVAILABLE, ascending

    def _head(self, version: str) -> bytes:
        head = self._heads.get(version)
        if head is None:
            head = self._heads[version] = self._pool.head(
                "POST", f"/v1/models/{self._model}/versions/{version}:predict"
            )
        return head

    async def _resolve(self, version: str | None) -> str:
        """The version number to call."""
        if version is None:
            if not self._default:
                await self._refresh()
            if not self._default:
                raise BackendUnavailable(self.name, f"no version of {self._model} is AVAILABLE")
            return self._default
        if version.isdigit():
            return version
        resolved = self._labels.get(version) or await self._lookup(version)
        if not resolved:
            labels = ", ".join(f"{k}={v}" for k, v in self._labels.items()) or "none known"
            raise UnknownVersion(self.name, f"no version carries the label {version!r} (labels: {labels})")
        return resolved

    async def _lookup(self, label: str) -> str:
        head = self._pool.head(
            "GET", f"/v1/models/{self._model}/labels/{quote(label, safe='')}/metadata", content_type=None
        )
        try:
            r = await call_http(self.name, self._pool, head, None, self._status_timeout)
            version = str(orjson.loads(r.body)["model_spec"]["version"]) if r.status == 200 else ""
        except (BackendError, orjson.JSONDecodeError, KeyError, TypeError):
            return ""
        if version:
            self._labels[label] = version
        return version

    async def predict(
        self, rows: np.ndarray, json_body: bytes | None = None, *, timeout: float, version: str | None = None
    ) -> Prediction:
        target = await self._resolve(version)
        body = json_body if json_body is not None else orjson.dumps({"instances": rows}, option=_NUMPY)
        r = await call_http(self.name, self._pool, self._head(target), body, min(timeout, self._timeout))
        payload = _json(self.name, r.body)
        if r.status != 200:
            message = payload.get("error", "") if isinstance(payload, dict) else ""
            raise http_error(self.name, r.status, str(message) or repr(r.body[:200]))
        if not isinstance(payload, dict) or "predictions" not in payload:
            raise BackendError(self.name, "response has no 'predictions'")
        predictions = payload["predictions"]
        if predictions and isinstance(predictions[0], dict):  # several outputs: pick ours
            predictions = [p[OUTPUT_NAME] for p in predictions]
        return Prediction(check_probabilities(self.name, predictions, len(rows)), target)

    async def status(self) -> Status:
        try:
            return await self._refresh()
        except BackendError as exc:
            return Status(False, detail=exc.message)

    async def _refresh(self) -> Status:
        """The model's versions, labels and default (raises BackendError when unreachable)."""
        r = await call_http(self.name, self._pool, self._status_head, None, self._status_timeout)
        implementation = "standin" if r.headers.get(STANDIN_HEADER) == "standin" else "real"
        try:
            states = orjson.loads(r.body)["model_version_status"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return Status(False, implementation=implementation, detail=f"HTTP {r.status}")
        available = sorted((str(s["version"]) for s in states if s.get("state") == "AVAILABLE"), key=int)
        self._versions = tuple(available)
        for label in list(self._labels):  # labels asked for before: re-read (a rollout may move them)
            await self._lookup(label)
        default = (await self._lookup(self._label) if self._label else "") or (available[-1] if available else "")
        self._default = default
        labels = {k: v for k, v in self._labels.items() if v in available}
        return Status(bool(available), default or None, implementation, versions=self._versions, labels=labels)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _json(backend: str, content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BackendError(backend, f"response is not JSON: {content[:80]!r}") from exc
