"""TorchServe over REST: ``POST /predictions/{model}``; readiness from the management API."""

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

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
STATUS_POOL = 4  # readiness checks are rare; a few connections suffice


class TorchServeStatus:
    """Readiness means every worker of the model is READY (``/ping`` is Healthy before that)."""

    def __init__(self, settings: ClientSettings):
        s = settings
        self._pool = HTTPPool(s.management_url, STATUS_POOL, connect_timeout=s.status_timeout_s)
        self._head = self._pool.head("GET", f"/models/{s.model}", content_type=None)
        self._timeout = s.status_timeout_s
        self.version = ""

    async def status(self) -> Status:
        try:
            r = await call_http("torchserve-management", self._pool, self._head, None, self._timeout)
            (desc,) = orjson.loads(r.body)
            workers = [w.get("status") for w in desc.get("workers", [])]
        except BackendError as exc:
            return Status(False, detail=exc.message)
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
            return Status(False, detail=f"management API answered HTTP {r.status}")
        self.version = str(desc.get("modelVersion", ""))
        ready = bool(workers) and all(w == "READY" for w in workers)
        return Status(ready, self.version, detail=f"workers: {', '.join(workers) or 'none'}")

    async def current_version(self) -> str:
        if not self.version:  # predictions carry no version: ask once, then on every status call
            await self.status()
        return self.version

    async def aclose(self) -> None:
        await self._pool.aclose()


class TorchServeRESTClient:
    protocol = "rest"

    def __init__(self, settings: ClientSettings):
        s = settings
        self.name, self.address = s.name, s.url
        self._pool = HTTPPool(s.url, s.pool, connect_timeout=s.timeout_s)
        self._predict = self._pool.head("POST", f"/predictions/{s.model}")
        self._timeout = s.timeout_s
        self._status = TorchServeStatus(s)

    async def predict(self, rows: np.ndarray, json_body: bytes | None = None) -> Prediction:
        body = json_body if json_body is not None else orjson.dumps({"instances": rows}, option=_NUMPY)
        r = await call_http(self.name, self._pool, self._predict, body, self._timeout)
        return parse_torchserve(self.name, r.status, r.body, len(rows), await self._status.current_version())

    async def status(self) -> Status:
        return await self._status.status()

    async def aclose(self) -> None:
        await self._pool.aclose()
        await self._status.aclose()


def parse_torchserve(backend: str, status: int, content: bytes, rows: int, version: str) -> Prediction:
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BackendError(backend, f"response is not JSON: {content[:80]!r}") from exc
    if status != 200:
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        raise http_error(backend, status, message or repr(content[:200]))
    if not isinstance(payload, dict) or "predictions" not in payload:
        raise BackendError(backend, "response has no 'predictions'")
    return Prediction(check_probabilities(backend, payload["predictions"], rows), version)
