"""Both servers take the same documented number of rows per request (spec.MAX_ROWS_PER_REQUEST).

TF Serving splits a large request across session runs of at most MAX_EXECUTION_BATCH rows
(``enable_large_batch_splitting``) and reassembles it in order; TorchServe's handler runs it in one
pass. Above the limit both answer a clear 400.
"""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest
import torch

from mnist_serving.spec import MAX_EXECUTION_BATCH, MAX_ROWS_PER_REQUEST
from tests.training.test_artifacts import session_predict
from training.train import artifact_paths

BATCH_METRIC = ":tensorflow:serving:batching_session:processed_batch_size"


@pytest.fixture(scope="module")
def many_rows(test_split) -> np.ndarray:
    return test_split.x_test[:MAX_ROWS_PER_REQUEST]


@pytest.fixture(scope="module")
def expected(artifact_dir, many_rows: np.ndarray) -> dict[str, np.ndarray]:
    paths = artifact_paths(artifact_dir, 1)
    with torch.no_grad():
        ts = torch.jit.load(str(paths["torchscript"]))(torch.from_numpy(many_rows)).numpy()
    tf, _ = session_predict(paths["savedmodel"], many_rows)
    return {"tfserving": tf, "torchserve": ts}


def _largest_batch_bucket(text: str) -> dict[float, float]:
    """Cumulative counts of the processed batch-size histogram, by upper bound."""
    pattern = rf'^{re.escape(BATCH_METRIC)}_bucket\{{[^}}]*le="([^"]+)"[^}}]*\}} (\S+)$'
    return {float(le): float(v) for le, v in re.findall(pattern, text, re.M)}


@pytest.mark.parametrize("n", [50, 200, MAX_ROWS_PER_REQUEST])
def test_tfserving_splits_large_requests_and_keeps_the_order(
    http: httpx.Client, tf_url: str, many_rows: np.ndarray, expected: dict[str, np.ndarray], n: int
) -> None:
    metrics_url = f"{tf_url}/monitoring/prometheus/metrics"
    before = _largest_batch_bucket(http.get(metrics_url).text)
    r = http.post(f"{tf_url}/v1/models/mnist:predict", json={"instances": many_rows[:n].tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.asarray(r.json()["predictions"]), expected["tfserving"][:n], atol=1e-6)
    after = _largest_batch_bucket(http.get(metrics_url).text)
    runs = after[float("inf")] - before.get(float("inf"), 0.0)
    small = after[float(MAX_EXECUTION_BATCH)] - before.get(float(MAX_EXECUTION_BATCH), 0.0)
    assert runs >= -(-n // MAX_EXECUTION_BATCH), "the request was not split into runs"
    assert small == runs, f"a session run took more than {MAX_EXECUTION_BATCH} rows"


@pytest.mark.parametrize("model", ["mnist", "mnist_onnx"])
@pytest.mark.parametrize("n", [50, 200, MAX_ROWS_PER_REQUEST])
def test_torchserve_takes_the_same_large_requests(
    http: httpx.Client, ts_url: str, many_rows: np.ndarray, expected: dict[str, np.ndarray], model: str, n: int
) -> None:
    r = http.post(f"{ts_url}/predictions/{model}", json={"instances": many_rows[:n].tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.asarray(r.json()["predictions"]), expected["torchserve"][:n], atol=1e-5)


def test_above_the_limit_both_servers_answer_a_clear_400(http: httpx.Client, tf_url: str, ts_url: str) -> None:
    body = {"instances": [[0.0] * 784] * (MAX_ROWS_PER_REQUEST + 1)}
    tf = http.post(f"{tf_url}/v1/models/mnist:predict", json=body)
    assert tf.status_code == 400
    assert tf.json()["error"] == (
        f"Task size {MAX_ROWS_PER_REQUEST + 1} is larger than maximum input batch size {MAX_ROWS_PER_REQUEST}"
    )
    ts = http.post(f"{ts_url}/predictions/mnist", json=body)
    assert ts.status_code == 400
    assert f"at most {MAX_ROWS_PER_REQUEST} rows per request" in ts.json()["message"]
