"""The FastAPI app: wiring only. Routes decode and encode; the data plane does the work."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.app.admission import RETRY_AFTER_S, Shed
from gateway.app.api.deps import api_key_check
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.routes import backends, compare, docs, health, page, predict
from gateway.app.clients.base import BackendError
from gateway.app.core import logging as gateway_logging
from gateway.app.core.config import Settings, get_settings
from gateway.app.core.errors import APIError
from gateway.app.core.metrics import GatewayMetrics
from gateway.app.dataplane import DataPlane, error_body
from gateway.app.factory import build_clients
from gateway.app.middleware import GatewayMiddleware

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway_logging.configure(settings.log_level)
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.dataplane = DataPlane(settings, build_clients(settings), metrics)
        app.state.dataplane.start()
        # Everything imported and built so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which would otherwise walk it again and again under load.
        gc.freeze()
        log.info(
            "gateway ready",
            extra={"backends": app.state.dataplane.names, "auth": "api-key" if settings.api_key_set else "open"},
        )
        yield
        await app.state.dataplane.aclose()

    # FastAPI's native OpenTelemetry checks for configured providers on every request; opt in.
    otel = settings.otel
    app = FastAPI(
        title="mnist-serving gateway",
        version="1.0",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        description="One prediction API in front of TensorFlow Serving and TorchServe.",
        telemetry=None if otel else {"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # served by routes/docs.py with local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    # The key check is attached only when keys are set: an open API pays nothing for it.
    keys = settings.api_key_set
    guarded = [Depends(api_key_check(keys))] if keys else []
    for router in (predict.router, compare.router, backends.router):
        app.include_router(router, dependencies=guarded)
    for router in (health.router, page.router, docs.router):  # probes, metrics, the pages stay open
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    app.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.ASSETS), name="docs-assets")
    _install_error_handlers(app)
    app.add_middleware(
        GatewayMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        max_image_bytes=settings.max_image_bytes,
    )
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Shed)
    async def shed(request: Request, exc: Shed) -> ORJSONResponse:
        request.state.shed = exc.reason  # the middleware times refusals apart (gateway_shed_latency_seconds)
        return ORJSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> ORJSONResponse:
        return ORJSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, exc: BackendError) -> ORJSONResponse:
        request.state.backend = exc.backend
        log.warning("backend error", extra={"backend": exc.backend, "kind": exc.kind, "error": exc.message})
        # Unavailable (refused, reset, circuit open): the supervisor restarts servers within seconds.
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
        return ORJSONResponse({"error": error_body(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> ORJSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return ORJSONResponse({"error": {"status": 422, "type": "invalid_parameter", "message": problems}}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette sets Allow; say it in words too
            message = (
                f"{request.method} is not allowed on {request.url.path}; use {headers.get('Allow', 'another method')}"
            )
        elif exc.status_code == 404:
            message = f"no route {request.url.path}; see /docs for the API"
        return ORJSONResponse(
            {"error": {"status": exc.status_code, "type": kind, "message": message}}, exc.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unhandled error")
        return ORJSONResponse(
            {"error": {"status": 500, "type": "internal_error", "message": "internal error; see the gateway log"}}, 500
        )
