"""Run a real gateway (uvicorn, real HTTP) in a thread with chosen settings; fake backends for faults."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app.core.config import Settings
from gateway.app.main import create_app
from mnist_serving.ports import local_url
from serving.native.process import free_ports


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    if port is None:
        (port,) = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield local_url(port)
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def gateway(**overrides: Any) -> Iterator[str]:
    """A gateway in a thread; its gRPC port is off unless ``grpc_port`` is given (a free one)."""
    with serve_in_thread(create_app(Settings(**{"grpc_port": 0, **overrides}))) as url:
        yield url


class FakeBackend:
    """Speaks just enough of both servers' paths; ``mode`` picks how it misbehaves."""

    MODES = ("ok", "500", "503", "garbage", "wrong_shape", "hang", "slow")

    def __init__(self, mode: str = "ok", delay_s: float = 0.005):
        self.mode = mode
        self.delay_s = delay_s  # "slow": every answer takes this long
        self.calls = 0
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":  # status endpoints
            return Response(
                b'{"model_version_status":[{"version":"7","state":"AVAILABLE"}]}', media_type="application/json"
            )
        self.calls += 1
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "slow":
            await asyncio.sleep(self.delay_s)
        if self.mode == "500":
            return Response(b'{"error":"boom"}', 500, media_type="application/json")
        if self.mode == "503":  # TorchServe's answer when its job queue is full
            return Response(
                b'{"code":503,"type":"ServiceUnavailableException","message":"Model \\"mnist\\" Version 1 has no '
                b'worker to serve inference request. Please use scale workers API to add workers."}',
                503,
                media_type="application/json",
            )
        if self.mode == "garbage":
            return Response(b"<html>surprise</html>", 200, media_type="text/html")
        if self.mode == "wrong_shape":
            return Response(b'{"predictions":[[0.5,0.5]]}', 200, media_type="application/json")
        row = [0.0] * 10
        row[3] = 1.0
        return Response(b'{"predictions":[' + str(row).encode() + b"]}", media_type="application/json")


class SimClock:
    """A simulated monotonic clock for the time-dependent logic (limiter, breaker, admission)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
