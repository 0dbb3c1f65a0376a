"""The data plane: pick a backend, call it safely, shape the answer. The HTTP layer only decodes and encodes.

One backend call, end to end (``_call``):
1. the circuit breaker may refuse at once (503, circuit open);
2. admission admits the request's rows under the backend's adaptive limit, or refuses (503, 429, 504);
3. the call gets what is left of the request's time budget; what cannot finish in it is refused
   before it is sent (504);
4. its outcome is classified once (``classify``): success, client error, overload, timeout, failure.
   Overload feeds the adaptive limit and proves the backend alive; it is never retried and never a
   breaker failure. Timeouts (when the call had a fair chance) and failures, unexpected exceptions
   included, count against the breaker. A call that never reached the model (the connection failed
   first) is retried once on the same backend, within its retry budget (retry.RetryBudget);
5. ``auto`` falls back to the next backend after a failure (or a circuit open), never after an
   overload of a healthy backend (that would move the overload) or a timeout (the budget is spent).

So a backend answering "queue full" receives exactly one call per request, and a failing one at most
two (one retry while its budget lasts) plus one fallback call elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from gateway.app.admission import Admission, Shed, deadline_exceeded
from gateway.app.breaker import CircuitBreaker
from gateway.app.clients.base import (
    BackendClient,
    BackendError,
    BackendOverloaded,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    Prediction,
    Status,
)
from gateway.app.core.config import Settings
from gateway.app.core.errors import APIError
from gateway.app.core.metrics import GatewayMetrics
from gateway.app.limiter import GradientLimit, LimitSettings
from gateway.app.retry import RetryBudget
from mnist_serving.spec import UNCERTAIN_BELOW

log = logging.getLogger("gateway.dataplane")

AUTO = "auto"
# Every backend's status (readiness, versions, labels) is read this often: a rollout's label move is
# followed within it, and an open circuit's backend is probed as soon as it says ready again
# (without this, a restarted server waits out the rest of the breaker's pause).
STATUS_EVERY_S = 0.5
# A timeout counts against the backend only when the call had a fair chance: at least this long, or
# ten times the backend's current round trip (a client's own 5 ms deadline says nothing about it).
FAIR_TIMEOUT_S = 0.5
FAIR_TIMEOUT_RTTS = 10.0


class Outcome(StrEnum):
    SUCCESS = "success"
    CLIENT_ERROR = "client_error"  # the backend refused the request (4xx / INVALID_ARGUMENT)
    OVERLOAD = "overload"  # the backend said it is full
    TIMEOUT = "timeout"
    FAILURE = "failure"  # anything else: unreachable, 5xx, a malformed answer, an unexpected exception


def classify(exc: BaseException | None) -> Outcome:
    """Every way a backend call can end, as exactly one outcome."""
    if exc is None:
        return Outcome.SUCCESS
    if isinstance(exc, BackendRejected):
        return Outcome.CLIENT_ERROR
    if isinstance(exc, BackendOverloaded):
        return Outcome.OVERLOAD
    if isinstance(exc, BackendTimeout):
        return Outcome.TIMEOUT
    return Outcome.FAILURE


@dataclass(frozen=True)
class Budget:
    """A request's time budget: until ``at`` (time.monotonic()); ``client``: the client set it
    (X-Request-Timeout-Ms), rather than the gateway's default."""

    at: float
    client: bool = False

    def left(self) -> float:
        return self.at - time.monotonic()


@dataclass(frozen=True)
class Canary:
    """A share of a backend's traffic (requests that name no version) sent to another version,
    sticky per client: the same principal always lands on the same side while the split holds."""

    version: str
    percent: float

    def takes(self, principal: str) -> bool:
        return zlib.crc32(principal.encode()) % 10_000 < self.percent * 100


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
            "uncertain": probs.max(axis=1) < UNCERTAIN_BELOW,
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.fallback_from:
            out["fallback_from"] = self.fallback_from
        return out


# A version number (1, 2.0) or a label (stable, canary-2): what a client may name. Anything else
# never reaches a backend: a version is put in the backend's URL.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_version_name(version: str) -> None:
    if not _VERSION.fullmatch(version):
        raise APIError(
            404, "unknown_version",
            f"no version {version[:40]!r}: a version is a number or a label of letters, digits, '.', '_' and '-'",
        )  # fmt: skip


def error_body(exc: BackendError) -> dict[str, Any]:
    return {"status": exc.status, "type": exc.kind, "message": str(exc), "backend": exc.backend}


class DataPlane:
    def __init__(self, settings: Settings, clients: dict[str, BackendClient], metrics: GatewayMetrics):
        self.clients = clients
        self.metrics = metrics
        self.max_rows = settings.backend_max_rows
        self.breakers = {
            n: CircuitBreaker(
                settings.breaker_failures, settings.breaker_reset_s, max_reset_s=settings.breaker_max_reset_s,
                probe_timeout_s=settings.max_timeout_ms / 1e3,
            )
            for n in clients
        }  # fmt: skip
        unknown = set(settings.route_weights) - set(clients)
        if unknown:
            raise ValueError(f"route_weights names unknown backends {sorted(unknown)}; known: {sorted(clients)}")
        self.weights = {n: w for n, w in settings.route_weights.items() if w > 0}
        self.admissions = {
            n: Admission(
                n,
                GradientLimit(
                    LimitSettings(
                        initial=settings.admission_limit,
                        min_limit=settings.admission_min_limit,
                        max_limit=max(settings.admission_limit, _max_limit(settings, n)),
                    )
                ),
                settings.admission_queue,
                settings.queue_timeout_ms / 1e3,
                settings.client_share,
            )
            for n in clients
        }
        self.budgets = {n: RetryBudget() for n in clients}
        self.fallback_on_overload = settings.fallback_on_overload
        self.shares_enforced = settings.client_share < 1
        metrics.watch_admissions(self.admissions)
        self._up: dict[str, bool] = {}
        for n in clients:
            self._mark(n, up=True)
        self._watcher: asyncio.Task[None] | None = None
        self.statuses: dict[str, Status] = {}  # the latest status of each backend
        self.canaries: dict[str, Canary] = {}

    def start(self) -> None:
        """Background work: every backend's status, read every STATUS_EVERY_S."""
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Keep each backend's status fresh (readiness, versions and labels: the clients route by
        them), and probe an open circuit's backend as soon as it says ready again after it was seen
        down (it crashed and restarted). One that says ready throughout (it answers its status but
        fails predictions) keeps the breaker's own pause."""
        seen_down: set[str] = set()
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            names = list(self.clients)
            statuses = await asyncio.gather(*(self.clients[n].status() for n in names), return_exceptions=True)
            for name, status in zip(names, statuses, strict=True):
                if not isinstance(status, Status):  # a status call must never end the watcher
                    log.error("status of %s failed", name, exc_info=status)
                    continue
                self.statuses[name] = status
                breaker = self.breakers[name]
                if breaker.state == "closed":
                    seen_down.discard(name)
                elif breaker.state == "open":
                    if not status.ready:
                        seen_down.add(name)
                    elif name in seen_down:
                        seen_down.discard(name)
                        log.info("%s is ready again: probing it now", name)
                        breaker.probe_now()

    async def versions(self, backend: str) -> list[str]:
        """Every version loaded and serving (``auto``: its first choice's)."""
        name = self._route_order()[0] if backend == AUTO else backend
        status = self.statuses.get(name) or await self.clients[name].status()
        return list(status.versions)

    async def model_ready(self, backend: str, version: str | None = None) -> bool:
        """Whether ``backend`` (any, for ``auto``) can answer ``version`` now; 404 for a version that no
        backend asked lists (one that lists nothing, being down, may yet have it: not ready)."""
        if version is not None:
            check_version_name(version)
        names = list(self.clients) if backend == AUTO else [backend]
        loaded: list[str] = []
        maybe = version is None
        for name in names:
            status = await self.clients[name].status()
            has = version is None or version in status.versions or version in status.labels
            if status.ready and has:
                return True
            maybe = maybe or has or not status.versions
            loaded += [v for v in (*status.versions, *status.labels) if v not in loaded]
        if not maybe:
            raise APIError(404, "unknown_version", f"no version {version!r} is loaded (loaded: {', '.join(loaded)})")
        return False

    @property
    def needs_principal(self) -> bool:
        """Who asks matters: fair shares are enforced, or a canary splits clients."""
        return self.shares_enforced or bool(self.canaries)

    @property
    def names(self) -> list[str]:
        return list(self.clients)

    def check_backend(self, name: str) -> str:
        if name != AUTO and name not in self.clients:
            raise APIError(400, "unknown_backend", f"unknown backend {name!r}; choose from {[AUTO, *self.clients]}")
        return name

    def _moves(self, name: str) -> bool:
        """Whether ``auto`` sends what ``name`` refuses for capacity to the next backend: only when it
        is more than saturated (fallback_on_overload aside): on probation after a failure, or stalled
        (calls in flight, none completing: its callers would wait for their timeouts)."""
        return self.fallback_on_overload or not self.breakers[name].proven or self.admissions[name].stalled()

    def precheck(self, backend: str, principal: str = "") -> None:
        """Before the body is read: refuse now what admission would surely refuse (a full queue, a
        wait no request could meet). For ``auto``, only when every backend it could use would."""
        if backend != AUTO:
            self.admissions[backend].precheck(principal)
            return
        shed: Shed | None = None
        for name in self._route_order():
            try:
                self.admissions[name].precheck(principal)
                return
            except Shed as exc:
                shed = shed or exc
                if not self._moves(name):
                    raise
        assert shed is not None
        raise shed

    async def infer(
        self,
        backend: str,
        rows: np.ndarray,
        json_body: bytes | None = None,
        *,
        budget: Budget,
        principal: str = "",
        version: str | None = None,
    ) -> Result:
        """``json_body``: the request's own JSON, when a REST backend can take it unchanged.
        ``budget``: the request's time budget; ``principal``: who asks, for fair shares;
        ``version``: a version number or label (None: the backend's default, or its canary's for
        the clients the canary takes)."""
        if backend != AUTO:
            if version is not None:
                await self._check_version(backend, version)
            elif self.canaries:
                version = self._canary_version(backend, principal)
            return await self._call(backend, rows, json_body, budget, principal, version=version)
        order = self._route_order()
        first_error: BackendError | None = None
        for name in order:
            if name != order[-1] and self.admissions[name].stalled():
                continue  # its calls are stuck: sending more would only add to those waiting for a timeout
            if version is not None:
                await self._check_version(name, version)  # 404 naming what is loaded, not the backend's own error
            try:
                chosen = version if version is not None or not self.canaries else self._canary_version(name, principal)
                result = await self._call(
                    name, rows, json_body, budget, principal, retry=name == order[0], version=chosen
                )
            except (BackendRejected, BackendTimeout):
                raise  # a bad request stays bad elsewhere; a timeout already spent the time budget
            except (Shed, BackendOverloaded) as exc:
                # Saturated is not broken: moving a healthy backend's load would overload the other
                # server too. But one that has just failed, or is back on probation after a crash
                # (its calls hang or crawl), is not merely saturated: the other server takes over.
                moves = self._moves(name)
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

    def _canary_version(self, name: str, principal: str) -> str | None:
        canary = self.canaries.get(name)
        return canary.version if canary is not None and canary.takes(principal) else None

    async def set_canary(self, name: str, version: str, percent: float) -> Canary:
        """Send ``percent`` of ``name``'s clients to ``version`` (it must be loaded)."""
        self.check_backend(name)
        if name == AUTO:
            raise APIError(400, "bad_backends", "a canary belongs to one backend, not auto")
        if not 0 <= percent <= 100:
            raise APIError(422, "invalid_parameter", f"percent must be within 0..100, got {percent}")
        await self._check_version(name, version)
        canary = self.canaries[name] = Canary(version, percent)
        log.info("canary set", extra={"backend": name, "version": version, "percent": percent})
        return canary

    def clear_canary(self, name: str) -> None:
        self.check_backend(name)
        if self.canaries.pop(name, None) is not None:
            log.info("canary cleared", extra={"backend": name})

    async def _check_version(self, name: str, version: str) -> None:
        """404 naming what is loaded, for a version the backend's latest status does not list."""
        check_version_name(version)
        status = self.statuses.get(name)
        if status is None:
            status = self.statuses[name] = await self.clients[name].status()
        if not version.replace(".", "").isdigit() or not status.versions or version in status.versions:
            return  # a label, or a backend that does not list its versions: the client resolves it
        labels = f"; labels {', '.join(f'{k}={v}' for k, v in status.labels.items())}" if status.labels else ""
        raise APIError(
            404, "unknown_version", f"{name} has no version {version!r} (loaded: {', '.join(status.versions)}{labels})"
        )

    def _route_order(self) -> list[str]:
        names, weights = list(self.weights), list(self.weights.values())
        chosen = random.choices(names, weights)[0] if len(names) > 1 else names[0]
        rest = sorted((n for n in self.clients if n != chosen), key=lambda n: -self.weights.get(n, 0.0))
        return [chosen, *rest]

    async def _call(
        self,
        name: str,
        rows: np.ndarray,
        json_body: bytes | None,
        budget: Budget,
        principal: str = "",
        *,
        retry: bool = True,
        version: str | None = None,
    ) -> Result:
        breaker = self.breakers[name]
        if not breaker.allow():
            self.metrics.backend_error(name, "circuit_open")
            wait = breaker.retry_after()
            error = BackendUnavailable(name, f"circuit open after repeated failures; next probe in {wait:.1f} s")
            error.retry_after_s = wait
            raise error
        probe = breaker.probing  # allowed while the circuit is half-open: this call is its one probe
        admission = self.admissions[name]
        cost = len(rows)
        try:
            await admission.acquire(cost, principal, budget.at)
        except BaseException as exc:  # refused before the call: the probe never ran
            if probe:
                breaker.release_probe()
            if isinstance(exc, Shed):
                self.metrics.shed(name, exc.reason)
            raise
        inflight = admission.inflight
        start = time.perf_counter()
        outcome: Outcome | None = None  # None: no verdict (cancelled, or never sent)
        try:
            prediction = await self._attempts(name, rows, json_body, budget.at, retry, version)
            outcome = Outcome.SUCCESS
        except Shed as exc:  # refused before it was sent (no time left): no verdict
            self.metrics.shed(name, exc.reason)
            raise
        except BackendError as exc:
            outcome = classify(exc)
            self.metrics.backend_error(name, exc.kind)
            if outcome is Outcome.TIMEOUT and budget.client:  # the client's own deadline: say so
                raise deadline_exceeded(
                    f"passed while {name} computed ({(time.perf_counter() - start) * 1e3:.0f} ms)"
                ) from exc
            raise
        except Exception as exc:  # a bug in a client or an answer nobody expected: still a failure
            outcome = Outcome.FAILURE
            log.exception("unexpected error calling %s", name)
            self.metrics.backend_error(name, "unexpected_error")
            raise BackendError(name, f"unexpected error in the gateway's {name} client ({type(exc).__name__})") from exc
        finally:
            admission.release(cost, principal)
            elapsed = time.perf_counter() - start
            self._settle(name, outcome, probe, elapsed, inflight, budget.client)
        self.metrics.observe_backend(name, prediction.model_version, elapsed)
        return Result(name, prediction, elapsed * 1e3)

    def _fair_timeout(self, name: str, waited_s: float, client_budget: bool) -> bool:
        """Did the backend have a fair chance? Always under the gateway's own budget; under a
        client's, when it waited at least FAIR_TIMEOUT_S or FAIR_TIMEOUT_RTTS round trips."""
        if not client_budget:
            return True
        rtt = self.admissions[name].limiter.rtt()
        fair = FAIR_TIMEOUT_S if math.isnan(rtt) else min(FAIR_TIMEOUT_S, FAIR_TIMEOUT_RTTS * rtt)
        return waited_s >= fair

    def _settle(
        self, name: str, outcome: Outcome | None, probe: bool, elapsed: float, inflight: float, client_budget: bool
    ) -> None:
        """The one place an outcome reaches the breaker, the limit and the metrics."""
        breaker, admission = self.breakers[name], self.admissions[name]
        if outcome is None:
            if probe:
                breaker.release_probe()
            return
        self.metrics.backend_call(name, outcome.value)
        if outcome in (Outcome.SUCCESS, Outcome.CLIENT_ERROR, Outcome.OVERLOAD):
            breaker.success()  # it answered: alive
            self._mark(name, up=True)
            if outcome is Outcome.SUCCESS:
                admission.observe(elapsed, inflight)
            elif outcome is Outcome.OVERLOAD:
                admission.overload_answer()
            return
        if outcome is Outcome.TIMEOUT:
            fair = self._fair_timeout(name, elapsed, client_budget)
            admission.observe(elapsed, inflight)  # the round trip was at least this long
            if not fair:  # the client's own short deadline says nothing about the backend: no verdict
                if probe:
                    breaker.release_probe()
                return
        breaker.failure(probe=probe)
        self._mark(name, up=breaker.state == "closed")

    async def _attempts(
        self, name: str, rows: np.ndarray, json_body: bytes | None, deadline: float, retry: bool, version: str | None
    ) -> Prediction:
        """The call with what is left of the budget; one retry when nothing reached the model and
        the retry budget allows it."""
        budget = self.budgets[name]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise deadline_exceeded(f"passed before {name} was called")
        expected = self.admissions[name].limiter.rtt()
        if remaining < expected:  # False while the round trip is unknown (nan)
            raise deadline_exceeded(
                f"leaves {remaining * 1e3:.1f} ms, less than {name}'s round trip ({expected * 1e3:.1f} ms): not sent"
            )
        try:
            prediction = await self._predict(name, rows, json_body, remaining, version)
        except BackendError as exc:
            _spend(budget, exc)
            remaining = deadline - time.monotonic()
            if not (retry and exc.retryable and budget.allows_retry() and remaining > 0):
                raise
            self.metrics.retry(name)
            try:
                prediction = await self._predict(name, rows, json_body, remaining, version)
            except BackendError as again:
                _spend(budget, again)
                raise
        budget.success()
        return prediction

    async def _predict(
        self, name: str, rows: np.ndarray, json_body: bytes | None, timeout: float, version: str | None
    ) -> Prediction:
        """Every client ends its call within ``timeout`` itself (the HTTP pool's timer, gRPC's
        deadline; tests/gateway/test_faults.py hangs a backend for each), so no second timer here."""
        client = self.clients[name]
        if len(rows) <= self.max_rows:
            return await client.predict(rows, json_body, timeout=timeout, version=version)
        chunks = [rows[i : i + self.max_rows] for i in range(0, len(rows), self.max_rows)]
        parts = await asyncio.gather(*(client.predict(c, timeout=timeout, version=version) for c in chunks))
        return Prediction(np.concatenate([p.probabilities for p in parts]), parts[0].model_version)

    def _mark(self, name: str, *, up: bool) -> None:
        """The backend_up gauge, touched only when a backend's state changes (not per request)."""
        if self._up.get(name) != up:
            self._up[name] = up
            self.metrics.backend_up.labels(name).set(1 if up else 0)

    async def compare(
        self,
        rows: np.ndarray,
        backends: list[str],
        json_body: bytes | None = None,
        *,
        budget: Budget,
        version: str | None = None,
    ) -> dict[str, Any]:
        if version is not None:
            for b in backends:
                await self._check_version(b, version)
        calls = (self._call(b, rows, json_body, budget, version=version) for b in backends)
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
            # One answer for the whole: the inner errors' status when they all share it (every
            # backend's 504 is a 504: the deadline passed), else 503.
            statuses = {r["error"]["status"] for r in results.values()}
            status = statuses.pop() if len(statuses) == 1 else 503
            raise APIError(status, "all_backends_failed", "no backend answered; see each one's error", results=results)
        ok = [o for o in outcomes if isinstance(o, Result)]
        agree = len(labels) == len(backends) and all(np.array_equal(labels[0], x) for x in labels[1:])
        answer: dict[str, Any] = {"results": results, "labels_agree": agree if len(labels) > 1 else None}
        if len(ok) > 1:
            first = ok[0].prediction.probabilities
            gaps = np.max([np.abs(first - o.prediction.probabilities).max(axis=1) for o in ok[1:]], axis=0)
            differ = np.zeros(len(first), dtype=bool)
            for x in labels[1:]:
                differ |= labels[0] != x
            answer["disagreeing_rows"] = np.flatnonzero(differ)
            answer["max_abs_probability_diff"] = float(gaps.max())
            answer["max_abs_probability_diff_row"] = int(gaps.argmax())
        return answer

    async def backends(self) -> list[dict[str, Any]]:
        statuses = await asyncio.gather(*(c.status() for c in self.clients.values()))
        out = []
        for (name, client), status in zip(self.clients.items(), statuses, strict=True):
            admission = self.admissions[name]
            entry: dict[str, Any] = {
                "name": name,
                "protocol": client.protocol,
                "address": client.address,
                "ready": status.ready,
                "model_version": status.model_version,
                "versions": list(status.versions),
                "labels": status.labels,
                "circuit": self.breakers[name].state,
                "canary": (
                    {"version": self.canaries[name].version, "percent": self.canaries[name].percent}
                    if name in self.canaries
                    else None
                ),
                "in_flight": admission.calls,
                "in_flight_rows": admission.inflight,
                "limit_rows": round(admission.limit, 1),
                "waiting": admission.waiting,
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


def _spend(budget: RetryBudget, exc: BackendError) -> None:
    """A failed call takes a token (an answer that the request was bad, or that the backend is full,
    is no failure of the backend's)."""
    if classify(exc) in (Outcome.TIMEOUT, Outcome.FAILURE):
        budget.failure()


def _max_limit(settings: Settings, name: str) -> float:
    """What the backend's own queue holds (TorchServe's two models share its frontend's settings)."""
    return settings.tfserving_max_limit if name == "tfserving" else settings.torchserve_max_limit
