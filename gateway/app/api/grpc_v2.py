"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), on its own port
(``GATEWAY_GRPC_PORT``, 8001 by default: Triton's convention), in the gateway's own event loop.

Thin as the REST routes: decode, one data-plane call, encode. The same limits, admission, budgets
(the call's gRPC deadline, else the gateway's default), API keys (``authorization: Bearer <key>`` or
``x-api-key`` metadata) and errors, mapped onto gRPC status codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from gateway.app.admission import Shed
from gateway.app.api.deps import Keys
from gateway.app.api.routes.v2 import GATEWAY_VERSION
from gateway.app.clients.base import BackendError
from gateway.app.core.config import Settings
from gateway.app.core.errors import APIError
from gateway.app.core.metrics import GatewayMetrics
from gateway.app.dataplane import Budget, DataPlane
from gateway.app.protocol import v2
from mnist_serving import oip

log = logging.getLogger("gateway.grpc")

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class InferenceService:
    def __init__(self, settings: Settings, dataplane: DataPlane, keys: Keys, metrics: GatewayMetrics):
        self.settings, self.dp, self.keys, self.metrics = settings, dataplane, keys, metrics

    def _auth(self, context: grpc.aio.ServicerContext) -> str:
        """The principal: the API key's name, else the peer's address."""
        state: dict[str, Any] = {}
        if self.keys:
            meta = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
            auth = meta.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            self.keys.check(token.strip() if scheme.lower() == "bearer" else meta.get("x-api-key", ""), state)
            return f"key:{state['principal']}"
        peer = context.peer() or ""
        return "addr:" + peer.rsplit(":", 1)[0]

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return oip.MESSAGES["ServerLiveResponse"](live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ready = any(b["ready"] for b in await self.dp.backends())
        return oip.MESSAGES["ServerReadyResponse"](ready=ready)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return oip.MESSAGES["ServerMetadataResponse"](
            name=oip.SERVER_NAME, version=GATEWAY_VERSION, extensions=list(oip.EXTENSIONS)
        )

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._auth(context)
        backend = v2.known_model(request.name, oip.MODELS)
        ready = await self.dp.model_ready(backend, request.version or None)
        return oip.MESSAGES["ModelReadyResponse"](ready=ready)

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._auth(context)
        backend = v2.known_model(request.name, oip.MODELS)
        versions = await self.dp.versions(backend)
        if request.version and request.version not in versions:
            raise APIError(404, "unknown_version", f"model {request.name!r} has no version {request.version!r} loaded")
        inputs, outputs = v2.tensor_metadata()
        return oip.MESSAGES["ModelMetadataResponse"](
            name=request.name, versions=versions, platform=f"mnist-serving:{backend}", inputs=inputs, outputs=outputs
        )

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        principal = self._auth(context)
        backend = v2.known_model(request.model_name, oip.MODELS)
        left = context.time_remaining()
        seconds = (
            self.settings.default_timeout_ms / 1e3 if left is None else min(left, self.settings.max_timeout_ms / 1e3)
        )
        budget = Budget(time.monotonic() + seconds, client=left is not None)
        principal = principal if self.dp.needs_principal else ""
        self.dp.precheck(backend, principal)
        decoded = v2.decode_grpc(request, self.settings.max_rows)
        result = await self.dp.infer(
            backend, decoded.rows, budget=budget, principal=principal, version=request.model_version or None
        )
        p = result.prediction
        return v2.encode_grpc(request.model_name, p.model_version, decoded.id, p.probabilities, decoded.outputs)

    def handlers(self) -> grpc.GenericRpcHandler:
        methods = {}
        for name, (request_type, _) in oip.METHODS.items():
            methods[name] = grpc.unary_unary_rpc_method_handler(
                self._guarded(name, getattr(self, name)),
                request_deserializer=request_type.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        return grpc.method_handlers_generic_handler(oip.SERVICE, methods)

    def _guarded(
        self, name: str, method: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        """The method with the gateway's errors as gRPC statuses (and metrics, like the REST routes)."""

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            status = 200
            try:
                return await method(request, context)
            except (APIError, BackendError) as exc:
                status = exc.status
                if isinstance(exc, Shed):
                    self.metrics.observe_shed(exc.reason, time.perf_counter() - start)
                message = exc.message if isinstance(exc, APIError) else str(exc)
                await context.abort(_CODES.get(status, grpc.StatusCode.INTERNAL), message)
            except grpc.aio.AbortError:
                raise
            except Exception:
                status = 500
                log.exception("unhandled error in %s", name)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the gateway log")
            finally:
                self.metrics.observe_request(f"grpc:{name}", "-", status, time.perf_counter() - start)
            raise AssertionError("unreachable: abort raises")

        return call


async def start(settings: Settings, dataplane: DataPlane, keys: Keys, metrics: GatewayMetrics) -> grpc.aio.Server:
    # SO_REUSEPORT only for several workers sharing the port (GATEWAY_WORKERS): otherwise a second
    # gateway on the same port must fail to start, not silently take half the calls.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if settings.workers > 1 else 0)])
    server.add_generic_rpc_handlers((InferenceService(settings, dataplane, keys, metrics).handlers(),))
    address = f"{settings.host}:{settings.grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    await server.start()
    log.info("gRPC (Open Inference Protocol) listening", extra={"address": address})
    return server
