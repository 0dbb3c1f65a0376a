"""Server-side time split from both servers' Prometheus metrics, scraped before and after a run."""

from __future__ import annotations

import re

import httpx

# metric name -> what it measures; each is a cumulative sum in microseconds plus a count.
TF_SERIES = {
    "queue": ":tensorflow:serving:batching_session:queuing_latency",
    "inference": ":tensorflow:serving:runtime_latency",
}
TS_SUMS = {"queue": "ts_queue_latency_microseconds", "inference": "ts_inference_latency_microseconds"}
TS_COUNT = "ts_inference_requests_total"


def _sum_matching(text: str, name: str) -> float:
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def snapshot(tf_metrics_url: str, ts_metrics_url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for server, url in (("tfserving", tf_metrics_url), ("torchserve", ts_metrics_url)):
        try:
            text = httpx.get(url, timeout=5).text
        except httpx.HTTPError:
            continue
        if server == "tfserving":
            for part, name in TF_SERIES.items():
                out[f"tfserving.{part}.sum"] = _sum_matching(text, f"{name}_sum")
                out[f"tfserving.{part}.count"] = _sum_matching(text, f"{name}_count")
        else:
            for part, name in TS_SUMS.items():
                out[f"torchserve.{part}.sum"] = _sum_matching(text, name)
            out["torchserve.count"] = _sum_matching(text, TS_COUNT)
    return out


def breakdown(before: dict[str, float], after: dict[str, float], server: str) -> dict[str, float] | None:
    """Mean queue and inference time per request (µs) between two snapshots, where exposed."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    if server == "tfserving":
        n_q, n_i = delta("tfserving.queue.count"), delta("tfserving.inference.count")
        if n_i <= 0:
            return None
        return {
            "queue_us": delta("tfserving.queue.sum") / n_q if n_q else 0.0,
            "inference_us": delta("tfserving.inference.sum") / n_i,
        }
    n = delta("torchserve.count")
    if n <= 0:
        return None
    return {"queue_us": delta("torchserve.queue.sum") / n, "inference_us": delta("torchserve.inference.sum") / n}
