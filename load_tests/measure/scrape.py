"""Server-side time split from both servers' (and the gateway's) Prometheus metrics, scraped before
and after a run. One set of definitions for both servers, per request:

- **queue**: waiting for a batch. TF Serving: ``batching_session:queuing_latency``; TorchServe:
  ``ts_queue_latency_microseconds``.
- **server total**: from the request's arrival in the server to its answer. TF Serving:
  ``request_latency``; TorchServe: ``ts_inference_latency_microseconds``, which the frontend measures
  from arrival, so it *includes* the queue.
- **compute** = server total − queue (the batch's model run plus the server's own (de)serialisation).
- **batch size**: rows per executed batch. TF Serving: ``processed_batch_size`` (sum/count and
  buckets); TorchServe exports none, so the load generator reads its handler's ``X-Batch-Requests``
  header instead (each request reports its batch; see ``batch_from_requests``).
- **gateway** (gateway targets): the gateway's request latency minus its time waiting on the backend.
"""

from __future__ import annotations

import re

import httpx
import numpy as np

TF_SERIES = {
    "queue": ":tensorflow:serving:batching_session:queuing_latency",
    "total": ":tensorflow:serving:request_latency",
    "inference": ":tensorflow:serving:runtime_latency",  # per session run (batch), for reference
    "batch": ":tensorflow:serving:batching_session:processed_batch_size",
}
TS_SUMS = {"queue": "ts_queue_latency_microseconds", "total": "ts_inference_latency_microseconds"}
TS_COUNT = "ts_inference_requests_total"
GW_SERIES = {"request": "gateway_request_latency_seconds", "backend": "gateway_backend_latency_seconds"}
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ADDS_UP_TOLERANCE = 0.15  # the parts must come within 15 % of the client-side p50


def _sum_matching(text: str, name: str) -> float:
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def _buckets(text: str, name: str) -> dict[float, float]:
    pattern = re.compile(rf'^{re.escape(name)}_bucket\{{[^}}]*le="([^"]+)"[^}}]*\}} (\S+)$', re.M)
    out: dict[float, float] = {}
    for le, v in pattern.findall(text):
        out[float(le)] = out.get(float(le), 0.0) + float(v)
    return out


def snapshot(tf_metrics_url: str, ts_metrics_url: str, gateway_metrics_url: str | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    urls = [("tfserving", tf_metrics_url), ("torchserve", ts_metrics_url)]
    if gateway_metrics_url:
        urls.append(("gateway", gateway_metrics_url))
    for server, url in urls:
        try:
            text = httpx.get(url, timeout=5).text
        except httpx.HTTPError:
            continue
        if server == "tfserving":
            for part, name in TF_SERIES.items():
                out[f"tfserving.{part}.sum"] = _sum_matching(text, f"{name}_sum")
                out[f"tfserving.{part}.count"] = _sum_matching(text, f"{name}_count")
            for le, v in _buckets(text, TF_SERIES["batch"]).items():
                out[f"tfserving.batch.le.{le:g}"] = v
        elif server == "torchserve":
            for part, name in TS_SUMS.items():
                out[f"torchserve.{part}.sum"] = _sum_matching(text, name)
            out["torchserve.count"] = _sum_matching(text, TS_COUNT)
        else:
            for part, name in GW_SERIES.items():
                out[f"gateway.{part}.sum"] = _sum_matching(text, f"{name}_sum")
                out[f"gateway.{part}.count"] = _sum_matching(text, f"{name}_count")
    return out


def _batch_hist_from_buckets(cumulative: dict[float, float]) -> dict[str, float]:
    """Share of executed batches per size range, from a cumulative histogram's deltas."""
    edges = sorted(cumulative)
    counts, prev = {}, 0.0
    for le in edges:
        if le == float("inf"):
            continue
        counts[f"≤{le:g}"] = cumulative[le] - prev
        prev = cumulative[le]
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items() if v > 0} if total else {}


def batch_from_requests(batch_per_request: np.ndarray) -> dict[str, object] | None:
    """Batches from what each request says its batch held (k requests each report k): a batch of k
    is counted once, i.e. weight 1/k per request. None when no request reported one."""
    b = batch_per_request[batch_per_request > 0].astype(float)
    if len(b) == 0:
        return None
    weights = 1.0 / b
    batches = weights.sum()
    hist: dict[str, float] = {}
    lo = 0
    for edge in BATCH_BUCKETS:
        share = float(weights[(b > lo) & (b <= edge)].sum() / batches)
        if share > 0:
            hist[f"≤{edge}"] = share
        lo = edge
    return {"mean": float(len(b) / batches), "hist": hist, "source": "X-Batch-Requests header"}


def breakdown(
    before: dict[str, float], after: dict[str, float], server: str, *, via_gateway: bool = False
) -> dict[str, object] | None:
    """Mean queue, compute and server total per request (µs) between two snapshots, plus the
    batch-size distribution where the server exports it, and the gateway's own part."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    out: dict[str, object]
    if server == "tfserving":
        n_q, n_t = delta("tfserving.queue.count"), delta("tfserving.total.count")
        if n_t <= 0:
            return None
        queue = delta("tfserving.queue.sum") / n_q if n_q else 0.0
        total = delta("tfserving.total.sum") / n_t
        n_b = delta("tfserving.batch.count")
        les = {float(k.rsplit(".le.", 1)[1]): delta(k) for k in after if k.startswith("tfserving.batch.le.")}
        out = {
            "queue_us": queue,
            "total_us": total,
            "compute_us": total - queue,
            "batch": {
                "mean": delta("tfserving.batch.sum") / n_b,
                "hist": _batch_hist_from_buckets(les),
                "source": "processed_batch_size",
            }
            if n_b > 0
            else None,
        }
    else:
        n = delta("torchserve.count")
        if n <= 0:
            return None
        queue, total = delta("torchserve.queue.sum") / n, delta("torchserve.total.sum") / n
        if total <= 0:  # TorchServe times REST inferences only; its gRPC path records no latency
            return None
        out = {"queue_us": queue, "total_us": total, "compute_us": total - queue, "batch": None}
    n_gw = delta("gateway.request.count")
    if via_gateway and n_gw > 0:
        own = (delta("gateway.request.sum") - delta("gateway.backend.sum")) / n_gw * 1e6
        out["gateway_us"] = own
        out["hop_us"] = delta("gateway.backend.sum") / n_gw * 1e6 - float(out["total_us"])  # type: ignore[arg-type]
    # Kept for the closed-loop matrix report.
    out["inference_us"] = out["compute_us"]
    return out


def adds_up(parts_us: float, client_p50_us: float) -> bool:
    return client_p50_us > 0 and abs(parts_us - client_p50_us) <= ADDS_UP_TOLERANCE * client_p50_us
