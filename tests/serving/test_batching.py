"""TF Serving's batching, seen from its own metrics: concurrent requests share session runs."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np

BATCH_METRIC = ":tensorflow:serving:batching_session:processed_batch_size"


def _batch_stats(text: str) -> tuple[float, float]:
    """(session runs, rows) so far; the series appears only after the first batch."""
    values = []
    for suffix in ("count", "sum"):
        m = re.search(rf"^{re.escape(BATCH_METRIC)}_{suffix}\S* (\S+)$", text, re.M)
        values.append(float(m.group(1)) if m else 0.0)
    return values[0], values[1]


async def _burst(url: str, body: dict, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as client:
        return await asyncio.gather(*(client.post(url, json=body) for _ in range(n)))


def test_concurrent_requests_are_batched(http: httpx.Client, tf_url: str, rows: np.ndarray) -> None:
    metrics_url = f"{tf_url}/monitoring/prometheus/metrics"
    runs_before, rows_before = _batch_stats(http.get(metrics_url).text)
    responses = asyncio.run(_burst(f"{tf_url}/v1/models/mnist:predict", {"instances": rows[:1].tolist()}, 64))
    assert all(r.status_code == 200 for r in responses)
    runs_after, rows_after = _batch_stats(http.get(metrics_url).text)
    assert rows_after - rows_before == 64
    assert runs_after - runs_before < 64, "every request ran alone: no batch formed"


def test_batching_config_states_the_shared_row_limits() -> None:
    from mnist_serving.spec import MAX_EXECUTION_BATCH, MAX_ROWS_PER_REQUEST
    from serving.tfserving.config import CONFIG_DIR
    from serving.tfserving_standin.configs import load_batching

    b = load_batching(CONFIG_DIR / "batching.config")
    assert b.enable_large_batch_splitting
    assert (b.max_batch_size, b.execution_batch_size) == (MAX_ROWS_PER_REQUEST, MAX_EXECUTION_BATCH)
