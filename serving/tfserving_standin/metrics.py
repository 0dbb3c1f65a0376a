"""Prometheus metrics under the real server's names (``:tensorflow:serving:*``), latencies in µs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
_US_BUCKETS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 50000, 100000, 1e6)

request_count = Counter(
    ":tensorflow:serving:request_count",
    "Requests by model and status.",
    ["model_name", "status", "entrypoint"],
    registry=REGISTRY,
)
request_latency = Histogram(
    ":tensorflow:serving:request_latency",
    "End-to-end request latency in microseconds.",
    ["model_name", "API", "entrypoint"],
    buckets=_US_BUCKETS,
    registry=REGISTRY,
)
runtime_latency = Histogram(
    ":tensorflow:serving:runtime_latency",
    "Session run (inference) latency in microseconds.",
    ["model_name", "API", "runtime"],
    buckets=_US_BUCKETS,
    registry=REGISTRY,
)
queuing_latency = Histogram(
    ":tensorflow:serving:batching_session:queuing_latency",
    "Time a task waited for its batch, microseconds.",
    ["thread_pool_name"],
    buckets=_US_BUCKETS,
    registry=REGISTRY,
)
batch_size = Histogram(
    ":tensorflow:serving:batching_session:processed_batch_size",
    "Rows per executed batch.",
    ["thread_pool_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
model_version_state = Gauge(
    ":tensorflow:serving:model_version_available",
    "1 when the model version is AVAILABLE.",
    ["model_name", "model_version"],
    registry=REGISTRY,
)
