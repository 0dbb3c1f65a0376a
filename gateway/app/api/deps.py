"""What the routes need from the app, without per-request dependency injection.

FastAPI resolves ``Depends`` on every request (measured: ~40 % of the gateway's own CPU per request
with four of them), so the data plane and settings are read from ``app.state`` by plain functions.
The API-key check is the one real dependency, and the app attaches it only when keys are set.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

from gateway.app.api.incoming import Incoming
from gateway.app.core.config import Settings
from gateway.app.core.errors import APIError
from gateway.app.dataplane import Budget, DataPlane


def settings_of(request: Request | Incoming) -> Settings:
    settings: Settings = request.scope["app"].state.settings
    return settings


def dataplane_of(request: Request | Incoming) -> DataPlane:
    dataplane: DataPlane = request.scope["app"].state.dataplane
    return dataplane


DEADLINE_HEADER = "x-request-timeout-ms"


def one_header(headers: Headers, name: str, shown: str) -> str | None:
    """A header's value, or None; 400 when it is sent more than once (which one would count?)."""
    raw = headers.get(name)
    if raw is not None and len(headers.getlist(name)) > 1:
        raise APIError(400, "invalid_header", f"{shown} is given more than once: send it once")
    return raw


_MILLISECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")


def budget_of(headers: Headers, settings: Settings) -> Budget:
    """The request's time budget: the client's ``X-Request-Timeout-Ms`` (milliseconds from now;
    gRPC's deadline over HTTP), at most ``max_timeout_ms``, else the gateway's default."""
    raw = one_header(headers, DEADLINE_HEADER, "X-Request-Timeout-Ms")
    if raw is None:
        return Budget(time.monotonic() + settings.default_timeout_ms / 1e3)
    if not _MILLISECONDS.fullmatch(raw):  # float() would also take "1_000", "nan", "1e3", " 5"
        raise APIError(400, "invalid_header", f"X-Request-Timeout-Ms must be milliseconds >= 0, got {raw[:40]!r}")
    ms = float(raw)
    return Budget(time.monotonic() + min(ms, settings.max_timeout_ms) / 1e3, client=True)


PRINCIPAL = "principal"  # request state key set by the API-key check


def principal_of(incoming: Incoming) -> str:
    """Who is asking, for fair shares: the name of the API key the check verified; when the API is
    open, the client's address (a header anyone can vary would let a client pose as many)."""
    name = incoming.state.get(PRINCIPAL)
    if name:
        return f"key:{name}"
    return "addr:" + incoming.client_host


class Keys:
    """The API keys (key -> the principal's name) and the one check both request paths run."""

    def __init__(self, names: dict[str, str]):
        self._keys = [(key.encode(), name) for key, name in names.items()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def check(self, given: str, state: dict[str, Any]) -> None:
        """401 unless ``given`` is a key; else its name goes into the request's state."""
        # Compared as bytes: a header is latin-1 text to Starlette, and compare_digest refuses
        # non-ASCII str (a TypeError, i.e. a 500, for a key with an accent).
        raw = given.encode("latin-1", "replace")
        match = ""
        for key, name in self._keys:  # every key compared, in constant time each
            if hmac.compare_digest(raw, key):
                match = name
        if not given or not match:
            raise APIError(401, "unauthorized", "a valid API key is required (Authorization: Bearer or X-API-Key)")
        state[PRINCIPAL] = match

    def check_headers(self, headers: Headers, state: dict[str, Any]) -> None:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
        self.check(given, state)


# Declared as security schemes, so the OpenAPI docs show both ways to send a key.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")


def api_key_check(keys: Keys) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency accepting ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

    async def require_api_key(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008
        header: str | None = Security(_header),
    ) -> None:
        keys.check(bearer.credentials if bearer else (header or ""), request.scope.setdefault("state", {}))

    return require_api_key
