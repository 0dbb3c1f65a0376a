"""``/v1/backends``: what the gateway routes to, every version each serves, and canary splits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway.app.api.deps import PRINCIPAL, dataplane_of, settings_of
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.incoming import Incoming
from gateway.app.api.params import read
from gateway.app.api.schemas import BackendsResponse, CanaryRequest, CanaryResponse, errors, json_body
from gateway.app.core.errors import APIError, unprocessable
from gateway.app.protocol.rows import parse_json

router = APIRouter(prefix="/v1", tags=["backends"])


@router.get(
    "/backends",
    response_class=ORJSONResponse,
    responses={200: {"model": BackendsResponse, "description": "every backend"}, **errors(401, 422)},
)
async def backends(request: Request) -> ORJSONResponse:
    """Each backend: address, protocol, every version it serves and its labels, readiness, circuit,
    the adaptive limit, calls in flight and waiting, and its canary split."""
    read(Incoming.of(request).query, {})
    return ORJSONResponse({"backends": await dataplane_of(request).backends()})


LOOPBACK = ("127.0.0.1", "::1")


def _admin(incoming: Incoming) -> None:
    """Routing changes: a key named in GATEWAY_ADMIN_KEYS (default: the first key), or, with the
    API open, a client on this machine."""
    settings = settings_of(incoming)
    if settings.api_key_set:
        if incoming.state.get(PRINCIPAL) not in settings.admin_names:
            raise APIError(403, "forbidden", "changing a canary needs an admin key (GATEWAY_ADMIN_KEYS)")
    elif incoming.client_host not in LOOPBACK:
        raise APIError(403, "forbidden", "with the API open, canaries are changed from the gateway's own machine only")


async def _canary_body(incoming: Incoming) -> tuple[str, float]:
    body: Any = parse_json(await incoming.body(settings_of(incoming).max_body_bytes))
    if not isinstance(body, dict) or set(body) - {"version", "percent"} or "version" not in body:
        raise unprocessable("bad_canary", 'the body is {"version": "2", "percent": 10}: the version and the share in %')
    percent = body.get("percent", 0)
    if type(percent) not in (int, float):
        raise unprocessable("bad_canary", f"percent must be a number within 0..100, got {percent!r}")
    return str(body["version"]), float(percent)


@router.put(
    "/backends/{backend}/canary",
    response_class=ORJSONResponse,
    responses={200: {"model": CanaryResponse}, **errors(400, 401, 403, 404, 422)},
    openapi_extra=json_body(CanaryRequest),
)
async def set_canary(request: Request, backend: str) -> ORJSONResponse:
    """Send ``percent`` % of the backend's clients (sticky: a client stays on its side) to ``version``,
    which must be loaded; requests naming a version are not split. A rollout's canary step."""
    incoming = Incoming.of(request)
    read(incoming.query, {})
    _admin(incoming)
    version, percent = await _canary_body(incoming)
    canary = await dataplane_of(request).set_canary(backend, version, percent)
    return ORJSONResponse({"backend": backend, "version": canary.version, "percent": canary.percent})


@router.delete(
    "/backends/{backend}/canary",
    response_class=ORJSONResponse,
    responses={200: {"model": CanaryResponse}, **errors(400, 401, 403, 422)},
)
async def clear_canary(request: Request, backend: str) -> ORJSONResponse:
    """End the backend's canary split: every client goes to its default version again."""
    incoming = Incoming.of(request)
    read(incoming.query, {})
    _admin(incoming)
    dataplane_of(request).clear_canary(backend)
    return ORJSONResponse({"backend": backend, "version": None, "percent": 0.0})
