"""Every exception a route can raise, as the one error answer: ``{"error": {"status", "type",
"message"}}`` with its headers (Retry-After on 503/429). Used by the app's exception handlers and by
the hot routes (api/hot.py), so both paths answer the same bytes."""

from __future__ import annotations

import logging
import math
from collections.abc import MutableMapping
from typing import Any

from gateway.app.admission import MAX_RETRY_AFTER_S, MIN_RETRY_AFTER_S, Shed
from gateway.app.clients.base import BackendError
from gateway.app.core.errors import APIError, shaped
from gateway.app.dataplane import error_body

log = logging.getLogger("gateway")

INTERNAL = {"error": {"status": 500, "type": "internal_error", "message": "internal error; see the gateway log"}}


def render(exc: BaseException, scope: MutableMapping[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for ``exc``: the Open Inference Protocol's ``{"error": "<message>"}``
    (with ``type`` and ``status`` beside it) on /v2 routes, the gateway's own shape elsewhere."""
    status, body, headers = _render(exc, scope.setdefault("state", {}))
    return status, shaped(scope.get("path", ""), status, body), headers


def _render(exc: BaseException, state: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``state`` (the request's) gets the labels the middleware records: ``shed`` (a refusal's
    reason), ``backend``."""
    if isinstance(exc, Shed):
        state["shed"] = exc.reason  # the middleware times refusals apart (gateway_shed_latency_seconds)
        return exc.status, exc.body(), exc.headers
    if isinstance(exc, APIError):
        return exc.status, exc.body(), exc.headers
    if isinstance(exc, BackendError):
        state["backend"] = exc.backend
        log.warning("backend error", extra={"backend": exc.backend, "kind": exc.kind, "error": exc.message})
        # Unavailable or overloaded: come back when the circuit's next probe is due, else in a second
        # (the supervisor restarts a crashed server within seconds).
        headers = {}
        if exc.status == 503:
            wait = exc.retry_after_s if exc.retry_after_s is not None else MIN_RETRY_AFTER_S
            headers["Retry-After"] = str(min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, math.ceil(wait))))
        return exc.status, {"error": error_body(exc)}, headers
    log.error("unhandled error", exc_info=exc)
    return 500, INTERNAL, {}
