"""TorchServe over REST: ``POST /predictions/{model}``; readiness from the management API."""

from __future__ import annotations

import numpy as np
import orjson

from gateway.app.clients.base import (
    BackendError,
    ClientSettings,
    Prediction,
    Status,
    UnknownVersion,
    call_http,
    check_probabilities,
    http_error,
)
from gateway.app.clients.http1 import HTTPPool

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
STATUS_POOL = 4  # readiness checks are rare; a few connections suffice


VERSION_HEADER = "x-model-version"  # the project's handler names the version that computed an answer


class TorchServeStatus:
    """Readiness means every worker of the model's default version is READY (``/ping`` is Healthy
    before that), read from the management API, with every version loaded (``/models/{m}/all``).
    Where the gateway may not reach it (Kubernetes' network policies keep the management port to
    the pod itself: ``management_url`` empty), the inference API's ``/ping`` stands in, and the
    pod's own readiness probe, which reads the workers, gates the Service."""

    def __init__(self, settings: ClientSettings):
        s = settings
        self.managed = bool(s.management_url)
        base = s.management_url or s.url
        self._pool = HTTPPool(base, STATUS_POOL, connect_timeout=s.status_timeout_s)
        self._default_head = self._pool.head(
            "GET", f"/models/{s.model}" if self.managed else "/ping", content_type=None
        )
        self._all_head = self._pool.head("GET", f"/models/{s.model}/all", content_type=None)
        self._timeout = s.status_timeout_s
        self.version = ""  # the default version, or the last one seen answering
        self.versions: tuple[str, ...] = ()

    async def status(self) -> Status:
        if not self.managed:
            return await self._ping()
        try:
            r = await call_http("torchserve-management", self._pool, self._default_head, None, self._timeout)
            (desc,) = orjson.loads(r.body)
            workers = [w.get("status") for w in desc.get("workers", [])]
            r_all = await call_http("torchserve-management", self._pool, self._all_head, None, self._timeout)
            every = orjson.loads(r_all.body)
        except BackendError as exc:
            return Status(False, detail=exc.message)
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
            return Status(False, detail=f"management API answered HTTP {r.status}")
        self.version = str(desc.get("modelVersion", ""))
        serving = [str(d.get("modelVersion")) for d in every if isinstance(d, dict) and _ready(d)]
        self.versions = tuple(sorted(serving, key=_version_key))
        ready = bool(workers) and all(w == "READY" for w in workers)
        return Status(ready, self.version, "real", f"workers: {', '.join(workers) or 'none'}", self.versions)

    async def _ping(self) -> Status:
        try:
            r = await call_http("torchserve", self._pool, self._default_head, None, self._timeout)
        except BackendError as exc:
            return Status(False, detail=exc.message)
        detail = "management API not configured: readiness from /ping"
        seen = (self.version,) if self.version else ()
        return Status(r.status == 200, self.version or None, "real", f"{detail} (HTTP {r.status})", seen)

    async def default_version(self) -> str:
        if not self.version and self.managed:
            await self.status()
        return self.version

    async def aclose(self) -> None:
        await self._pool.aclose()


def _ready(desc: dict[str, object]) -> bool:
    workers = desc.get("workers")
    return isinstance(workers, list) and bool(workers) and all(w.get("status") == "READY" for w in workers)


def _version_key(version: str) -> tuple[int, ...]:
    """TorchServe versions are dotted numbers ("1", "2.0")."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


class TorchServeRESTClient:
    """Versions by number (``/predictions/{m}/{version}``). A request without one is sent to the
    default version by number when the management API says which (so its answer names it), else to
    ``/predictions/{m}``, whose answer names its version in the handler's ``X-Model-Version``."""

    protocol = "rest"

    def __init__(self, settings: ClientSettings):
        s = settings
        self.name, self.address, self._model = s.name, s.url, s.model
        self._pool = HTTPPool(s.url, s.pool, connect_timeout=s.timeout_s)
        self._predict = self._pool.head("POST", f"/predictions/{s.model}")
        self._heads: dict[str, bytes] = {}
        self._timeout = s.timeout_s
        self._status = TorchServeStatus(s)

    def _head(self, version: str | None) -> bytes:
        if not version:
            return self._predict
        head = self._heads.get(version)
        if head is None:
            head = self._heads[version] = self._pool.head("POST", f"/predictions/{self._model}/{version}")
        return head

    async def predict(
        self, rows: np.ndarray, json_body: bytes | None = None, *, timeout: float, version: str | None = None
    ) -> Prediction:
        target = check_version(self.name, version) if version is not None else await self._status.default_version()
        body = json_body if json_body is not None else orjson.dumps({"instances": rows}, option=_NUMPY)
        r = await call_http(self.name, self._pool, self._head(target), body, min(timeout, self._timeout))
        answered = r.headers.get(VERSION_HEADER) or target
        if answered and not self._status.managed:
            self._status.version = answered
        return parse_torchserve(self.name, r.status, r.body, len(rows), answered)

    async def status(self) -> Status:
        return await self._status.status()

    async def aclose(self) -> None:
        await self._pool.aclose()
        await self._status.aclose()


def check_version(backend: str, version: str) -> str:
    if not version.replace(".", "").isdigit():
        raise UnknownVersion(backend, f"TorchServe versions are numbers (such as 1 or 2.0), not {version!r}")
    return version


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
