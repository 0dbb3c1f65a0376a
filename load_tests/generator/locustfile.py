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

import gevent.socket
import grpc
from geventhttpclient import HTTPClient
from geventhttpclient.connectionpool import ConnectionPool
from grpc.experimental import gevent as grpc_gevent
from locust import FastHttpUser, User, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # so `locust -f` finds the packages

from load_tests.contracts import VIA
from load_tests.generator import checks, payloads, recorder  # noqa: F401  (recorder installs the hooks)
from load_tests.generator.openloop import CONNECTIONS, Answer, OpenLoopUser, mark_written
from load_tests.targets import TARGETS, Target

grpc_gevent.init_gevent()  # grpcio's blocking calls yield to other greenlets
HEADERS = {"Content-Type": "application/json"}
BATCH_HEADER = "X-Batch-Requests"  # TorchServe's handler: requests in this request's batch
GRPC_TIMEOUT_S = 30.0
LEAN_TIMEOUT_S = 30.0  # connect and network timeouts of the lean HTTP client (as gRPC's call timeout)


class _StampingSocket(gevent.socket.socket):
    """geventhttpclient's socket, stamping each open-loop request's send time once its bytes are
    written (a request to these servers is one ``sendall``; the kernel takes it whole)."""

    def sendall(self, data: Any, flags: int = 0) -> None:
        super().sendall(data, flags)
        mark_written()


def _stamping_tcp_socket(self: ConnectionPool, family: int, socktype: int, protocol: int) -> gevent.socket.socket:
    return _StampingSocket(family, socktype, protocol)


# geventhttpclient's documented socket factory (FastHttpUser's pools are made inside Locust).
ConnectionPool._create_tcp_socket = _stamping_tcp_socket  # type: ignore[method-assign]


def _start_offset(user: object, n: int) -> int:
    # Each user walks the digits from its own offset, so concurrent users send different rows.
    return id(user) % n


class _HttpMixin:
    """One POST of the target's payload; the answer is checked, not merely its status."""

    target: Target
    client: Any

    def _setup_payloads(self) -> None:
        bodies = payloads.v2_bodies() if self.target.payload == "v2" else payloads.json_bodies()
        start = _start_offset(self, len(bodies))
        self._bodies = itertools.islice(itertools.cycle(bodies), start, None)
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
            issue, backend = checks.answer(r.content or b"", compare=t.compare, v2=t.payload == "v2")
            if issue:
                r.failure(issue)
                return Answer(False, code=code)
            via = VIA.index(backend) if backend in VIA else 0
            return Answer(True, int(r.headers.get(BATCH_HEADER) or 0), code, via)


class _LeanHttpMixin(_HttpMixin):
    """The open-loop JSON POST on geventhttpclient's own client, without Locust's session around it:
    the same request, connections and answer check at about half the generator's CPU per request
    (71 against 133-150 µs here, measured against servers/trivial.py), so sends leave sooner after
    their intended time. Locust's request event is fired by hand, as for gRPC, so its statistics
    still count every request."""

    environment: Any
    host: str

    def _setup_payloads(self) -> None:
        super()._setup_payloads()
        self._http = HTTPClient.from_url(
            self.host, concurrency=CONNECTIONS, connection_timeout=LEAN_TIMEOUT_S, network_timeout=LEAN_TIMEOUT_S
        )

    def _post(self, intended: float | None = None, context: dict[str, Any] | None = None) -> Answer:
        t = self.target
        start = time.perf_counter()
        exc: Exception | None = None
        answer, content = Answer(False), b""
        try:
            r = self._http.request("POST", t.path, body=next(self._bodies), headers=HEADERS)
            try:
                content = r.read()
                code = r.status_code or 0
                batch = r.get(BATCH_HEADER)
            finally:
                r.release()
            if code != 200:
                exc, answer = AssertionError(f"HTTP {code}: {content[:200]!r}"), Answer(False, code=code)
            else:
                issue, backend = checks.answer(content, compare=t.compare, v2=t.payload == "v2")
                if issue:
                    exc, answer = AssertionError(issue), Answer(False, code=code)
                else:
                    answer = Answer(True, int(str(batch or 0)), code, VIA.index(backend) if backend in VIA else 0)
        except Exception as e:  # refused, reset, timed out, garbled (OSError, HTTPParseError, ...): a failed request
            exc = e
        self.environment.events.request.fire(
            request_type="POST",
            name=t.name,
            response_time=(time.perf_counter() - (start if intended is None else intended)) * 1000,
            response_length=len(content),
            exception=exc,
            context=context or {},
        )
        return answer

    def on_stop(self) -> None:
        self._http.close()


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
        request = next(self._reqs)
        # grpcio has no hook after its write (it writes from its own I/O loop as the call starts):
        # the send is stamped as the call is handed to it, the latest point Python can see.
        mark_written()
        try:
            answer = self._call(request, timeout=GRPC_TIMEOUT_S)
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
    # multipart uploads keep Locust's session
    lean = _LeanHttpMixin if target.payload in ("json", "v2") else _HttpMixin
    mixin: type = _GrpcMixin if target.protocol == "grpc" else lean
    bases: tuple[type, ...] = (OpenLoopUser, FastHttpUser) if mixin is _HttpMixin else (OpenLoopUser,)

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
