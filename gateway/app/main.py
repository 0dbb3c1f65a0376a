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

from gateway.app.api import grpc_v2
from gateway.app.api.deps import Keys, api_key_check
from gateway.app.api.encode import ORJSONResponse
from gateway.app.api.errors import render
from gateway.app.api.hot import HotRoutes
from gateway.app.api.routes import backends, compare, docs, health, page, predict, v2
from gateway.app.clients.base import BackendError
from gateway.app.core import logging as gateway_logging
from gateway.app.core.config import Settings, get_settings
from gateway.app.core.errors import APIError
from gateway.app.core.metrics import GatewayMetrics
from gateway.app.dataplane import DataPlane
from gateway.app.factory import build_clients
from gateway.app.middleware import GatewayMiddleware
from gateway.app.overload import LoopLag
from gateway.app.protocol.images import ImageDecoder

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_startup()
    gateway_logging.configure(settings.log_level)
    metrics = GatewayMetrics()
    lag = LoopLag(settings.loop_lag_low_ms / 1e3, settings.loop_lag_high_ms / 1e3)
    metrics.watch_loop(lag)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.dataplane = DataPlane(settings, build_clients(settings), metrics)
        app.state.dataplane.start()
        app.state.image_decoder = ImageDecoder(settings.image_decode_threads, settings.image_decode_queue)
        grpc_server = await grpc_v2.start(settings, app.state.dataplane, keys, metrics) if settings.grpc_port else None
        lag.start()
        # Everything imported and built so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which would otherwise walk it again and again under load.
        gc.freeze()
        log.info(
            "gateway ready",
            extra={"backends": app.state.dataplane.names, "auth": "api-key" if settings.api_key_set else "open"},
        )
        yield
        lag.stop()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        app.state.image_decoder.close()
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
        redirect_slashes=False,  # /v2/models/mnist/infer/ is a 404 naming the routes, not a 307 with no body
    )
    app.state.settings = settings
    app.state.metrics = metrics
    # The key check is attached only when keys are set: an open API pays nothing for it.
    keys = Keys(settings.api_key_names)
    guarded = [Depends(api_key_check(keys))] if keys else []
    for router in (predict.router, compare.router, backends.router, v2.router):
        app.include_router(router, dependencies=guarded)
    for router in (health.router, v2.health, page.router, docs.router):  # probes, metrics, the pages stay open
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    app.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.ASSETS), name="docs-assets")
    _install_error_handlers(app)
    app.add_middleware(
        GatewayMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        max_image_bytes=settings.max_image_bytes,
        lag=lag,
        hot=HotRoutes(keys) if settings.hot_path else None,
    )
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def rendered(request: Request, exc: Exception) -> ORJSONResponse:
        status, body, headers = render(exc, request.scope)
        return ORJSONResponse(body, status_code=status, headers=headers or None)

    for kind in (APIError, BackendError, Exception):  # Shed is an APIError
        app.add_exception_handler(kind, rendered)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> ORJSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return await rendered(request, APIError(422, "invalid_parameter", problems))

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
        error = APIError(exc.status_code, kind, message)
        error.headers = headers
        return await rendered(request, error)
