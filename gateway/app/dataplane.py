"""The data plane: pick a backend, call it safely, shape the answer. The HTTP layer only decodes and encodes."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.app.admission import Admission, Shed, deadline_exceeded
from gateway.app.breaker import CircuitBreaker
from gateway.app.clients.base import (
    BackendClient,
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    Prediction,
)
from gateway.app.core.config import Settings
from gateway.app.core.errors import APIError
from gateway.app.core.metrics import GatewayMetrics

log = logging.getLogger("gateway.dataplane")

AUTO = "auto"
# While a circuit is open, the backend's readiness is read this often; once it says ready, the next
# request probes it (without this, a restarted server waits out the rest of the breaker's pause).
OPEN_CIRCUIT_CHECK_S = 0.5


@dataclass(frozen=True)
class Result:
    backend: str
    prediction: Prediction
    latency_ms: float
    fallback_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        probs = self.prediction.probabilities
        out: dict[str, Any] = {
            "backend": self.backend,
            "model_version": self.prediction.model_version,
            "predictions": probs,
            "labels": probs.argmax(axis=1),
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.fallback_from:
            out["fallback_from"] = self.fallback_from
        return out


def error_body(exc: BackendError) -> dict[str, Any]:
    return {"status": exc.status, "type": exc.kind, "message": str(exc), "backend": exc.backend}


class DataPlane:
    def __init__(self, settings: Settings, clients: dict[str, BackendClient], metrics: GatewayMetrics):
        self.clients = clients
        self.metrics = metrics
        self.max_rows = settings.backend_max_rows
        self.breakers = {n: CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s) for n in clients}
        unknown = set(settings.route_weights) - set(clients)
        if unknown:
            raise ValueError(f"route_weights names unknown backends {sorted(unknown)}; known: {sorted(clients)}")
        self.weights = {n: w for n, w in settings.route_weights.items() if w > 0}
        self.admissions = {
            n: Admission(
                n,
                settings.admission_limit,
                settings.admission_queue,
                settings.queue_timeout_ms / 1e3,
                settings.client_share,
            )
            for n in clients
        }
        self.fallback_on_overload = settings.fallback_on_overload
        self.shares_enforced = settings.client_share < 1
        metrics.watch_admissions(self.admissions)
        self._up: dict[str, bool] = {}
        for n in clients:
            self._mark(n, up=True)
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Background work: watch open circuits for their backend's return."""
        self._watcher = asyncio.create_task(self._watch_open_circuits())

    async def _watch_open_circuits(self) -> None:
        """A backend seen not ready while its circuit is open (it crashed, it restarts) is probed as
        soon as it says ready again. One that says ready throughout (it answers its status but fails
        predictions) keeps the breaker's own pause."""
        seen_down: set[str] = set()
        while True:
            await asyncio.sleep(OPEN_CIRCUIT_CHECK_S)
            for name, breaker in self.breakers.items():
                if breaker.state != "open":
                    if breaker.state == "closed":
                        seen_down.discard(name)
                    continue
                try:
                    ready = (await self.clients[name].status()).ready
                except Exception:  # a status call must never end the watcher
                    log.exception("status of %s failed", name)
                    continue
                if not ready:
                    seen_down.add(name)
                elif name in seen_down:
                    seen_down.discard(name)
                    log.info("%s is ready again: probing it now", name)
                    breaker.probe_now()

    @property
    def names(self) -> list[str]:
        return list(self.clients)

    def check_backend(self, name: str) -> str:
        if name != AUTO and name not in self.clients:
            raise APIError(400, "unknown_backend", f"unknown backend {name!r}; choose from {[AUTO, *self.clients]}")
        return name

    async def infer(
        self,
        backend: str,
        rows: np.ndarray,
        json_body: bytes | None = None,
        *,
        deadline: float | None = None,
        client: str = "",
    ) -> Result:
        """``json_body``: the request's own JSON, when a REST backend can take it unchanged.
        ``deadline``: the client's (time.monotonic()); ``client``: who asks, for fair shares."""
        if backend != AUTO:
            return await self._call(backend, rows, json_body, deadline, client)
        order = self._route_order()
        first_error: BackendError | None = None
        for name in order:
            try:
                result = await self._call(name, rows, json_body, deadline, client)
            except (BackendRejected, BackendTimeout):
                raise  # a bad request stays bad elsewhere; a timeout already spent the time budget
            except Shed as exc:
                # Saturated is not broken: moving a healthy backend's load would overload the other
                # server too. But one that has just failed, or is back on probation after a crash
                # (its calls hang or crawl), is not merely saturated: the other server takes over.
                moves = self.fallback_on_overload or not self.breakers[name].proven
                if exc.status != 503 or not moves:
                    raise
                log.info("auto route: %s at capacity, falling back", name)
                continue
            except BackendError as exc:
                first_error = first_error or exc
                log.warning("auto route: %s failed, falling back", name, extra={"error": str(exc)})
                continue
            if name != order[0]:
                self.metrics.fallbacks.labels(order[0], name).inc()
                return Result(result.backend, result.prediction, result.latency_ms, fallback_from=order[0])
            return result
        assert first_error is not None
        raise first_error

    def _route_order(self) -> list[str]:
        names, weights = list(self.weights), list(self.weights.values())
        chosen = random.choices(names, weights)[0] if len(names) > 1 else names[0]
        rest = sorted((n for n in self.clients if n != chosen), key=lambda n: -self.weights.get(n, 0.0))
        return [chosen, *rest]

    async def _call(
        self,
        name: str,
        rows: np.ndarray,
        json_body: bytes | None = None,
        deadline: float | None = None,
        client: str = "",
    ) -> Result:
        breaker = self.breakers[name]
        if not breaker.allow():
            self.metrics.backend_error(name, "circuit_open")
            raise BackendUnavailable(
                name, f"circuit open after repeated failures; next probe in {breaker.retry_after():.1f} s"
            )
        admission = self.admissions[name]
        admitted = False
        try:
            await admission.acquire(client, deadline)
            admitted = True
            start = time.perf_counter()
            if deadline is None:
                prediction = await self._predict(name, rows, json_body)
            else:
                prediction = await self._predict_by(name, rows, json_body, deadline)
        except Shed as exc:  # refused in the queue, or the client's deadline passed
            breaker.release_probe()  # a probe that never ran must not keep the circuit half-open
            self.metrics.shed(name, exc.reason)
            raise
        except BackendRejected as exc:
            breaker.success()  # the backend is alive; the request was the problem
            self.metrics.backend_error(name, exc.kind)
            raise
        except BackendError as exc:
            breaker.failure()
            self.metrics.backend_error(name, exc.kind)
            self._mark(name, up=breaker.state == "closed")
            raise
        finally:
            if admitted:
                admission.release(client)
        breaker.success()
        self._mark(name, up=True)
        elapsed = time.perf_counter() - start
        admission.observe(elapsed)
        self.metrics.observe_backend(name, elapsed)
        return Result(name, prediction, elapsed * 1e3)

    async def _predict(self, name: str, rows: np.ndarray, json_body: bytes | None) -> Prediction:
        if len(rows) <= self.max_rows:
            return await self._predict_once(name, rows, json_body)
        chunks = [rows[i : i + self.max_rows] for i in range(0, len(rows), self.max_rows)]
        parts = await asyncio.gather(*(self._predict_once(name, c) for c in chunks))
        return Prediction(np.concatenate([p.probabilities for p in parts]), parts[0].model_version)

    async def _predict_by(self, name: str, rows: np.ndarray, json_body: bytes | None, deadline: float) -> Prediction:
        """The call cut off at the client's deadline; never started when it has already passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise deadline_exceeded(f"passed before {name} was called")
        try:
            async with asyncio.timeout(remaining):
                return await self._predict(name, rows, json_body)
        except TimeoutError:
            raise deadline_exceeded(f"of {remaining * 1e3:.0f} ms left passed while {name} computed") from None

    def _mark(self, name: str, *, up: bool) -> None:
        """The backend_up gauge, touched only when a backend's state changes (not per request)."""
        if self._up.get(name) != up:
            self._up[name] = up
            self.metrics.backend_up.labels(name).set(1 if up else 0)

    async def _predict_once(self, name: str, rows: np.ndarray, json_body: bytes | None = None) -> Prediction:
        client = self.clients[name]
        try:
            return await client.predict(rows, json_body)
        except BackendError as exc:
            if not exc.retryable:
                raise
            return await client.predict(rows, json_body)  # nothing reached the model: one retry is safe

    async def compare(
        self, rows: np.ndarray, backends: list[str], json_body: bytes | None = None, *, deadline: float | None = None
    ) -> dict[str, Any]:
        calls = (self._call(b, rows, json_body, deadline) for b in backends)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        results: dict[str, Any] = {}
        labels = []
        for name, outcome in zip(backends, outcomes, strict=True):
            if isinstance(outcome, BackendError):
                results[name] = {"backend": name, "error": error_body(outcome)}
            elif isinstance(outcome, Shed):
                results[name] = {"backend": name, "error": {**outcome.body()["error"], "backend": name}}
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results[name] = outcome.as_dict()
                labels.append(outcome.prediction.probabilities.argmax(axis=1))
        if not labels:
            raise APIError(503, "all_backends_failed", "no backend answered", results=results)
        ok = [o for o in outcomes if isinstance(o, Result)]
        agree = len(labels) == len(backends) and all(np.array_equal(labels[0], x) for x in labels[1:])
        answer: dict[str, Any] = {"results": results, "labels_agree": agree if len(labels) > 1 else None}
        if len(ok) > 1:
            diffs = [np.abs(ok[0].prediction.probabilities - o.prediction.probabilities).max() for o in ok[1:]]
            answer["max_abs_probability_diff"] = float(max(diffs))
        return answer

    async def backends(self) -> list[dict[str, Any]]:
        statuses = await asyncio.gather(*(c.status() for c in self.clients.values()))
        out = []
        for (name, client), status in zip(self.clients.items(), statuses, strict=True):
            entry: dict[str, Any] = {
                "name": name,
                "protocol": client.protocol,
                "address": client.address,
                "ready": status.ready,
                "model_version": status.model_version,
                "circuit": self.breakers[name].state,
                "in_flight": self.admissions[name].inflight,
                "waiting": self.admissions[name].waiting,
                "route_weight": self.weights.get(name, 0.0),
            }
            if status.implementation:
                entry["implementation"] = status.implementation
            if status.detail:
                entry["detail"] = status.detail
            out.append(entry)
        return out

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await asyncio.gather(*(c.aclose() for c in self.clients.values()), return_exceptions=True)
