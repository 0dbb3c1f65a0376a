"""Prometheus metrics under the real server's names (``:tensorflow:serving:*``), latencies in µs."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()
_US_BUCKETS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 50000, 100000, 1e6)


class ExactCounter:
    """A counter exported under its exact name, as TF Serving's own exporter writes it
    (``:tensorflow:serving:request_count{...} 7``); prometheus_client would append ``_total``, and
    dashboards and alerts written for the real server would find nothing."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]):
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> _CounterChild:
        assert len(values) == len(self.labelnames)
        return _CounterChild(self, values)

    def inc(self, values: tuple[str, ...], amount: float = 1.0) -> None:
        with self._lock:
            self._values[values] = self._values.get(values, 0.0) + amount

    def exposition(self) -> str:
        lines = [f"# HELP {self.name} {self.documentation}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        for values, total in items:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(self.labelnames, values, strict=True))
            lines.append(f"{self.name}{{{labels}}} {total:g}")
        return "\n".join(lines) + "\n"


class _CounterChild:
    def __init__(self, parent: ExactCounter, values: tuple[str, ...]):
        self._parent, self._values = parent, values

    def inc(self, amount: float = 1.0) -> None:
        self._parent.inc(self._values, amount)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


request_count = ExactCounter(
    ":tensorflow:serving:request_count", "Requests by model and status.", ("model_name", "status", "entrypoint")
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


def exposition() -> bytes:
    """The whole /monitoring/prometheus/metrics page."""
    return generate_latest(REGISTRY) + request_count.exposition().encode()
