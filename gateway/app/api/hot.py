"""The prediction routes that carry the traffic, served without FastAPI's per-request machinery.

Measured on this project's machine (a raw-ASGI backend answering at once, one client): the gateway
spent ~440 µs of CPU per ``POST /v1/predict``, a bare proxy ~290 µs; ~100 µs of the difference was
Starlette's routing (a regular expression per route), the ``Request`` object, FastAPI's parameter
solving, three layers of exception middleware and a ``Response`` object, none of which the endpoint
needs. ``HotRoutes`` matches the hot routes exactly and calls the very endpoint functions the
FastAPI routes call (api/routes/*: read parameters, decode, one data-plane call, encode), rendering
errors with the same function as the app's handlers (api/errors.py). Every other request, and these
too with ``GATEWAY_HOT_PATH=false``, goes through FastAPI, which also declares these routes in the
OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from gateway.app.api.errors import render
from gateway.app.api.incoming import Incoming
from gateway.app.api.routes import predict, v2

# An endpoint answers a JSON object, or the bytes of its answer and their headers (v2's binary tensors).
Answer = dict[str, Any] | tuple[bytes, dict[str, str]]
Endpoint = Callable[[Incoming], Awaitable[Answer]]
_JSON = (b"content-type", b"application/json")
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class HotRoutes:
    def __init__(self, keys: Any | None):
        """``keys``: the API keys (api.deps.Keys) when set: these routes then check them as the
        FastAPI routes' dependency does."""
        self.keys = keys or None
        self.routes: dict[tuple[str, str], Endpoint] = {("POST", "/v1/predict"): predict.predict}

    def match(self, scope: Scope) -> Endpoint | None:
        """The endpoint of a hot route (setting ``path_params`` for the v2 ones), else None."""
        endpoint = self.routes.get((scope["method"], scope["path"]))
        if endpoint is not None or scope["method"] != "POST":
            return endpoint
        parts = scope["path"].split("/")  # "", "v2", "models", m, ("versions", v,) "infer"
        if len(parts) in (5, 7) and parts[1] == "v2" and parts[2] == "models" and parts[-1] == "infer" and parts[3]:
            if len(parts) == 5:
                scope["path_params"] = {"model": parts[3]}
            elif parts[4] == "versions" and parts[5]:
                scope["path_params"] = {"model": parts[3], "version": parts[5]}
            else:
                return None
            return v2.infer
        return None

    async def serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = Incoming(scope, receive)
        headers: dict[str, str] = {}
        try:
            if self.keys is not None:
                self.keys.check_headers(incoming.headers, incoming.state)
            status, answer = 200, await endpoint(incoming)
            if isinstance(answer, tuple):
                content, headers = answer
            else:
                content = orjson.dumps(answer, option=_NUMPY)
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as exc:
            status, body, headers = render(exc, scope)
            content = orjson.dumps(body, option=_NUMPY)
        raw = [_JSON, (b"content-length", b"%d" % len(content))]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})
