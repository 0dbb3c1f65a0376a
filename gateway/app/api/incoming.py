"""What an endpoint reads of a request, the same from FastAPI's ``Request`` and from a raw ASGI
scope (api/hot.py): query parameters, headers, the client, the request's state, and its body read
under a byte limit."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from gateway.app.core.errors import APIError, too_large

MIN_BODY_WAIT_S = 1.0  # the least time a body may take to arrive, whatever the request's budget


@dataclass
class Incoming:
    scope: Scope
    receive: Receive

    @classmethod
    def of(cls, request: Request) -> Incoming:
        return cls(request.scope, request.receive)

    @property
    def headers(self) -> Headers:
        return Headers(scope=self.scope)

    @property
    def query(self) -> list[tuple[str, str]]:
        """Every ``name=value`` pair in order (a name may repeat: the endpoints refuse that)."""
        raw: bytes = self.scope["query_string"]
        if not raw:
            return []
        text = raw.decode("latin-1")
        if "%" in text or "+" in text:  # anything escaped: the standard parser
            return parse_qsl(text, keep_blank_values=True)
        return [(name, value) for name, _, value in (pair.partition("=") for pair in text.split("&") if pair)]

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.scope.setdefault("state", {})
        return state

    @property
    def client_host(self) -> str:
        client = self.scope.get("client")
        return client[0] if client else ""

    @property
    def content_type(self) -> str:
        for key, value in self.scope["headers"]:
            if key == b"content-type":
                return value.decode("latin-1").split(";")[0].strip().lower()
        return ""

    async def body(self, limit: int, deadline: float | None = None) -> bytes:
        """The body, refusing more than ``limit`` bytes whether or not Content-Length was sent, and
        a body that has not all arrived by ``deadline`` (time.monotonic(), the request's budget: a
        client that stops sending must not hold the request, its connection and its admission)."""
        if deadline is None:
            return await self._body(limit)
        # At least MIN_BODY_WAIT_S: a spent budget (X-Request-Timeout-Ms: 0) is the data plane's 504
        # once the body is in, not a race between the body and the timer.
        wait = max(deadline - time.monotonic(), MIN_BODY_WAIT_S)
        try:
            async with asyncio.timeout(wait):
                return await self._body(limit)
        except TimeoutError:
            raise APIError(
                408, "body_timeout", "the request's body did not all arrive within its time budget "
                "(X-Request-Timeout-Ms, else the gateway's default): send the whole body at once",
            ) from None  # fmt: skip

    async def _body(self, limit: int) -> bytes:
        message = await self.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):  # the usual case: one message
            if len(body) > limit:
                raise too_large("body_too_large", f"request body exceeds {limit} bytes")
            return body
        chunks, size = [body], len(body)
        while message.get("more_body"):
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large("body_too_large", f"request body exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
