"""Prometheus metrics for the gateway (own registry, so tests and reloads never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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
            "Time spent waiting on a backend.",
            ["backend"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "gateway_backend_errors", "Backend failures by kind.", ["backend", "kind"], registry=self.registry
        )
        self.backend_up = Gauge(
            "gateway_backend_up", "1 when the backend's circuit is closed.", ["backend"], registry=self.registry
        )
        self.fallbacks = Counter(
            "gateway_fallbacks",
            "auto requests served by a fallback backend.",
            ["from_backend", "to_backend"],
            registry=self.registry,
        )
