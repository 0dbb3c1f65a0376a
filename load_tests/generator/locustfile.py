"""Locust users, two per target (see targets.py):

- ``<Target>User``: closed loop, for the web UI and quick looks (each user sends when its answer arrives);
- ``OpenLoop<Target>User``: open loop at ``LOAD_RATE`` on a seeded Poisson schedule, timed from the
  intended send time (openloop.py); what ``make load`` measures capacity with.

FastHttpUser: HttpUser's own CPU cost under-reports servers on small machines. gRPC targets use
grpcio in gevent mode with pre-serialised requests.

    locust -f load_tests/generator/locustfile.py --headless -u 8 -r 8 -t 30s TFServingUser
    LOAD_RATE=500 locust -f load_tests/generator/locustfile.py --headless -u 1 -t 30s OpenLoopTFServingUser
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc.experimental import gevent as grpc_gevent
from locust import FastHttpUser, User, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # so `locust -f` finds the packages

from load_tests.contracts import VIA
from load_tests.generator import checks, payloads, recorder  # noqa: F401  (recorder installs the hooks)
from load_tests.generator.openloop import CONNECTIONS, Answer, OpenLoopUser
from load_tests.targets import TARGETS, Target

grpc_gevent.init_gevent()  # grpcio's blocking calls yield to other greenlets
HEADERS = {"Content-Type": "application/json"}
BATCH_HEADER = "X-Batch-Requests"  # TorchServe's handler: requests in this request's batch
GRPC_TIMEOUT_S = 30.0


def _start_offset(user: object, n: int) -> int:
    # Each user walks the digits from its own offset, so concurrent users send different rows.
    return id(user) % n


class _HttpMixin:
    """One POST of the target's payload; the answer is checked, not merely its status."""

    target: Target
    client: Any

    def _setup_payloads(self) -> None:
        start = _start_offset(self, len(payloads.json_bodies()))
        self._bodies = itertools.islice(itertools.cycle(payloads.json_bodies()), start, None)
        self._pngs = itertools.islice(itertools.cycle(payloads.png_files()), start, None)

    def _post(self, intended: float | None = None, context: dict[str, Any] | None = None) -> Answer:
        t = self.target
        kwargs: dict[str, Any]
        if t.payload == "png":
            kwargs = {"files": {"file": ("digit.png", next(self._pngs), "image/png")}}
        else:
            kwargs = {"data": next(self._bodies), "headers": HEADERS}
        with self.client.post(t.path, name=t.name, catch_response=True, context=context or {}, **kwargs) as r:
            if intended is not None:  # open loop: the time counts from the intended send
                r.request_meta["response_time"] = (time.perf_counter() - intended) * 1000
            code = r.status_code or 0
            if code != 200:
                r.failure(f"HTTP {code}: {(r.text or '')[:200]}")
                return Answer(False, code=code)
            issue, backend = checks.answer(r.content or b"", compare=t.compare)
            if issue:
                r.failure(issue)
                return Answer(False, code=code)
            via = VIA.index(backend) if backend in VIA else 0
            return Answer(True, int(r.headers.get(BATCH_HEADER) or 0), code, via)


class _GrpcMixin:
    """One unary call with a pre-serialised binary tensor request."""

    target: Target
    environment: Any

    def _setup_payloads(self) -> None:
        t = self.target
        self._channel = grpc.insecure_channel(os.environ.get(t.host_env, t.default_host))
        self._call = self._channel.unary_unary(t.path)  # bytes in, bytes out: no per-call message building
        reqs = payloads.grpc_requests(t.path, t.model)
        self._reqs = itertools.islice(itertools.cycle(reqs), _start_offset(self, len(reqs)), None)

    def _post(self, intended: float | None = None, context: dict[str, Any] | None = None) -> Answer:
        start = time.perf_counter()
        exc: Exception | None = None
        answer = b""
        try:
            answer = self._call(next(self._reqs), timeout=GRPC_TIMEOUT_S)
            issue = checks.tensor_problem(payloads.grpc_probabilities(self.target.path, answer))
            if issue:
                exc = AssertionError(issue)
        except grpc.RpcError as e:
            exc = e
        self.environment.events.request.fire(
            request_type="grpc",
            name=self.target.name,
            response_time=(time.perf_counter() - (start if intended is None else intended)) * 1000,
            response_length=len(answer),
            exception=exc,
            context=context or {},
        )
        return Answer(exc is None, code=200 if exc is None else 0)

    def on_stop(self) -> None:
        self._channel.close()


def _closed(target: Target) -> type[User]:
    mixin: type = _GrpcMixin if target.protocol == "grpc" else _HttpMixin
    base: type[User] = User if target.protocol == "grpc" else FastHttpUser

    class Closed(mixin, base):  # type: ignore[valid-type,misc]
        host = os.environ.get(target.host_env, target.default_host)
        wait_time = constant(0)  # closed loop: the next request leaves when the answer arrives
        abstract = False

        def on_start(self) -> None:
            self.target = target
            self._setup_payloads()

        @task
        def predict(self) -> None:
            self._post()

    Closed.__name__ = Closed.__qualname__ = target.user_class
    return Closed


def _open(target: Target) -> type[User]:
    mixin: type = _GrpcMixin if target.protocol == "grpc" else _HttpMixin
    bases: tuple[type, ...] = (OpenLoopUser,) if target.protocol == "grpc" else (OpenLoopUser, FastHttpUser)

    class Open(mixin, *bases):  # type: ignore[misc]
        host = os.environ.get(target.host_env, target.default_host)
        concurrency = CONNECTIONS
        abstract = False
        target_name = target.name

        def on_start(self) -> None:
            self.target = target
            self._setup_payloads()

        def send(self, intended: float, context: dict[str, Any]) -> Answer:
            return self._post(intended, context)

    Open.__name__ = Open.__qualname__ = target.open_user_class
    return Open


for _target in TARGETS:
    globals()[_target.user_class] = _closed(_target)
    globals()[_target.open_user_class] = _open(_target)
