"""Prometheus metrics for the gateway.

One registry per app (tests and reloads never collide). Label children are bound once and cached:
``labels()`` costs ~9 µs a call, and the hot path would pay it four times per request.

With several workers (``GATEWAY_WORKERS`` > 1) prometheus-client runs in multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by ``python -m gateway.app``): each worker writes its samples to
that folder and ``/metrics`` on any worker answers the sum over all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests",
            "Requests by route, backend and HTTP status.",
            ["route", "backend", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_latency_seconds",
            "Gateway request latency.",
            ["route", "backend"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.backend_latency = Histogram(
            "gateway_backend_latency_seconds",
            "Time spent waiting on a backend, by the model version that answered.",
            ["backend", "model_version"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "gateway_backend_errors", "Backend failures by kind.", ["backend", "kind"], registry=self.registry
        )
        self.backend_up = Gauge(
            "gateway_backend_up",
            "1 when the backend's circuit is closed (with several workers: in every worker).",
            ["backend"],
            registry=self.registry,
            multiprocess_mode="min",
        )
        self.fallbacks = Counter(
            "gateway_fallbacks",
            "auto requests served by a fallback backend.",
            ["from_backend", "to_backend"],
            registry=self.registry,
        )
        self.shed_requests = Counter(
            "gateway_shed",
            "Requests refused before reaching a backend, by reason: queue_full and queue_timeout (503), "
            "client_share (429), deadline (504); backend 'gateway' and reason gateway_lag: refused at the "
            "door because the gateway's own event loop lags (503).",
            ["backend", "reason"],
            registry=self.registry,
        )
        self.backend_calls = Counter(
            "gateway_backend_calls",
            "Backend calls by outcome, each classified once: success, client_error, overload, timeout, failure.",
            ["backend", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "gateway_backend_retries",
            "Calls retried on the same backend (nothing had reached the model; within the retry budget).",
            ["backend"],
            registry=self.registry,
        )
        self.shed_latency = Histogram(
            "gateway_shed_latency_seconds",
            "Time from arrival to a refusal's answer, by reason (queue_timeout waits the queue deadline).",
            ["reason"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, route: str, backend: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, backend, str(status)).inc()
        self._child(self.latency, route, backend).observe(seconds)

    def observe_backend(self, backend: str, version: str, seconds: float) -> None:
        self._child(self.backend_latency, backend, version).observe(seconds)

    def backend_error(self, backend: str, kind: str) -> None:
        self._child(self.backend_errors, backend, kind).inc()

    def observe_shed(self, reason: str, seconds: float) -> None:
        self._child(self.shed_latency, reason).observe(seconds)

    def shed(self, backend: str, reason: str) -> None:
        self._child(self.shed_requests, backend, reason).inc()

    def backend_call(self, backend: str, outcome: str) -> None:
        self._child(self.backend_calls, backend, outcome).inc()

    def retry(self, backend: str) -> None:
        self._child(self.retries, backend).inc()

    def watch_admissions(self, admissions: Mapping[str, Any]) -> None:
        """In-flight and waiting calls per backend, read at scrape time (nothing on the hot path).
        Multiprocess mode cannot read callbacks across workers: there the gauges are left out."""
        if multiprocess():
            return
        inflight = Gauge(
            "gateway_backend_in_flight",
            "Rows in flight per backend (a request's cost is its rows).",
            ["backend"],
            registry=self.registry,
        )
        waiting = Gauge(
            "gateway_backend_waiting", "Calls waiting for an admission slot.", ["backend"], registry=self.registry
        )
        limit = Gauge(
            "gateway_backend_limit_rows",
            "The adaptive limit: rows the gateway lets each backend work on at once.",
            ["backend"],
            registry=self.registry,
        )
        for name, admission in admissions.items():
            inflight.labels(name).set_function(partial(getattr, admission, "inflight"))
            waiting.labels(name).set_function(partial(getattr, admission, "waiting"))
            limit.labels(name).set_function(partial(getattr, admission, "limit"))

    def watch_loop(self, lag: Any) -> None:
        """The event loop's smoothed lag and the door's shedding pressure, read at scrape time."""
        if multiprocess():
            return
        Gauge(
            "gateway_event_loop_lag_seconds", "Smoothed event-loop lag (gateway/app/overload.py).",
            registry=self.registry,
        ).set_function(partial(getattr, lag, "lag_s"))  # fmt: skip
        Gauge(
            "gateway_door_shed_probability", "Share of prediction requests refused at the door now.",
            registry=self.registry,
        ).set_function(partial(getattr, lag, "pressure"))  # fmt: skip

    def exposition(self) -> bytes:
        """The text format: this registry, or every worker's samples in multiprocess mode."""
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
