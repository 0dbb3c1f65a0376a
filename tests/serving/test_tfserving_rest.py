"""TF Serving's REST contract, against the running server (real binary or stand-in)."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest

from tests.training.test_artifacts import session_predict
from training.train import artifact_paths

PREDICT = "/v1/models/mnist:predict"


def test_model_status(http: httpx.Client, tf_url: str) -> None:
    r = http.get(f"{tf_url}/v1/models/mnist")
    assert r.status_code == 200
    (status,) = r.json()["model_version_status"]
    assert status == {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


@pytest.mark.parametrize("path", ["/v1/models/mnist/versions/1", "/v1/models/mnist/labels/stable"])
def test_version_and_label_status(http: httpx.Client, tf_url: str, path: str) -> None:
    r = http.get(tf_url + path)
    assert r.status_code == 200 and r.json()["model_version_status"][0]["version"] == "1"


def test_metadata_names_the_signature(http: httpx.Client, tf_url: str) -> None:
    meta = http.get(f"{tf_url}/v1/models/mnist/metadata").json()
    assert meta["model_spec"] == {"name": "mnist", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(sig["inputs"]) == ["pixels"] and list(sig["outputs"]) == ["probabilities"]
    assert sig["method_name"] == "tensorflow/serving/predict"


@pytest.mark.parametrize(
    "path", [PREDICT, "/v1/models/mnist/versions/1:predict", "/v1/models/mnist/labels/stable:predict"]
)
def test_row_format_matches_in_process_model(
    http: httpx.Client, tf_url: str, rows: np.ndarray, artifact_dir, path: str
) -> None:
    r = http.post(tf_url + path, json={"instances": rows[:16].tolist()})
    assert r.status_code == 200, r.text
    served = np.asarray(r.json()["predictions"])
    expected, _ = session_predict(artifact_paths(artifact_dir, 1)["savedmodel"], rows[:16])
    assert served.shape == (16, 10)
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_columnar_format(http: httpx.Client, tf_url: str, rows: np.ndarray) -> None:
    for inputs in (rows[:3].tolist(), {"pixels": rows[:3].tolist()}):
        r = http.post(tf_url + PREDICT, json={"inputs": inputs, "signature_name": "serving_default"})
        assert r.status_code == 200, r.text
        assert np.asarray(r.json()["outputs"]).shape == (3, 10)


def test_named_instances(http: httpx.Client, tf_url: str, rows: np.ndarray) -> None:
    r = http.post(tf_url + PREDICT, json={"instances": [{"pixels": row} for row in rows[:2].tolist()]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"instances": [[0.1, 0.2]]}, "shape"),
        ({"instances": [[0.1] * 784, [0.1] * 783]}, "ragged"),
        ({"instances": [["a"] * 784]}, "float"),
        ({"instances": [["0.1"] * 784]}, "got strings"),
        ({"instances": [[True] * 784]}, "got booleans"),
        ({"instances": []}, "non-empty"),
        ({"rows": [[0.0] * 784]}, "instances"),
        ({"instances": [[0.0] * 784], "inputs": [[0.0] * 784]}, "exactly one"),
        ({"instances": [[0.0] * 784], "signature_name": "nope"}, "nope"),
    ],
)
def test_bad_tensors_are_400_with_error(http: httpx.Client, tf_url: str, body: dict, needle: str) -> None:
    r = http.post(tf_url + PREDICT, json=body)
    assert r.status_code in (400, 404), r.text
    assert needle in r.json()["error"]


def test_invalid_json(http: httpx.Client, tf_url: str) -> None:
    r = http.post(tf_url + PREDICT, content=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    ["/v1/models/nope", "/v1/models/mnist/versions/99", "/v1/models/mnist/labels/canary", "/v1/models/nope:predict"],
)
def test_unknown_model_version_label_is_404(http: httpx.Client, tf_url: str, path: str) -> None:
    r = (
        http.post(tf_url + path, json={"instances": [[0.0] * 784]})
        if path.endswith("predict")
        else http.get(tf_url + path)
    )
    assert r.status_code == 404 and r.json()["error"]


def test_prometheus_metrics(http: httpx.Client, tf_url: str) -> None:
    text = http.get(f"{tf_url}/monitoring/prometheus/metrics").text
    # the real server's exact names: its counters carry no `_total` (dashboards query them as is)
    assert re.search(r'^:tensorflow:serving:request_count\{model_name="mnist",status="OK"', text, re.MULTILINE)
    assert "request_count_total" not in text
    assert ":tensorflow:serving:runtime_latency_bucket" in text


def test_says_which_implementation_ran(http: httpx.Client, tf_url: str, stack) -> None:
    header = http.get(f"{tf_url}/v1/models/mnist").headers.get("x-tfserving-implementation")
    assert header == ("standin" if stack.tf_implementation == "standin" else None)
