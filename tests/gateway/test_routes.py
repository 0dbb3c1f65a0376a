"""Every route against the real gateway in front of the real servers."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from mnist_serving.ports import local_url
from tests.gateway.conftest import png_bytes

BACKENDS = ["tfserving", "torchserve", "torchserve-onnx"]


def _predict(gw: httpx.Client, url: str, rows: list, backend: str = "auto") -> httpx.Response:
    return gw.post(f"{url}/v1/predict", params={"backend": backend}, json={"instances": rows})


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_each_backend_matches_direct_server(
    gw: httpx.Client, gw_url: str, digits, backend: str, serving_stack
) -> None:
    rows, labels = digits
    r = _predict(gw, gw_url, rows[:10].tolist(), backend)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == backend and body["model_version"] == "1"
    probs = np.asarray(body["predictions"])
    assert probs.shape == (10, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert body["labels"] == probs.argmax(axis=1).tolist()
    assert (np.asarray(body["labels"]) == labels[:10]).mean() >= 0.8
    p = serving_stack.ports
    direct = {
        "tfserving": local_url(p.tfserving_rest, "/v1/models/mnist:predict"),
        "torchserve": local_url(p.torchserve_inference, "/predictions/mnist"),
        "torchserve-onnx": local_url(p.torchserve_inference, "/predictions/mnist_onnx"),
    }[backend]
    expected = np.asarray(gw.post(direct, json={"instances": rows[:10].tolist()}).json()["predictions"])
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_28x28_rows_equal_flat_rows(gw: httpx.Client, gw_url: str, digits) -> None:
    rows = digits[0][:3]
    flat = _predict(gw, gw_url, rows.tolist()).json()
    square = _predict(gw, gw_url, rows.reshape(3, 28, 28).tolist()).json()
    assert flat["predictions"] == square["predictions"]


def test_auto_uses_default_policy(gw: httpx.Client, gw_url: str, digits) -> None:
    body = _predict(gw, gw_url, digits[0][:1].tolist()).json()
    assert body["backend"] == "tfserving" and "fallback_from" not in body


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_path_gives_json_path_labels_on_mnist_pngs(
    gw: httpx.Client, gw_url: str, digits, digit_pngs, backend: str
) -> None:
    rows, _ = digits
    json_labels = _predict(gw, gw_url, rows.tolist(), backend).json()["labels"]
    image_labels = []
    for path in digit_pngs:
        r = gw.post(
            f"{gw_url}/v1/predict/image",
            params={"backend": backend},
            files={"file": (path.name, path.read_bytes(), "image/png")},
        )
        assert r.status_code == 200, r.text
        image_labels.extend(r.json()["labels"])
    assert image_labels == json_labels


def test_image_include_input_returns_model_input(gw: httpx.Client, gw_url: str, digits) -> None:
    row = digits[0][0]
    r = gw.post(
        f"{gw_url}/v1/predict/image",
        params={"include_input": "true"},
        files={"file": ("d.png", png_bytes(row), "image/png")},
    )
    model_input = np.asarray(r.json()["input"])
    assert model_input.shape == (28, 28)
    np.testing.assert_allclose(model_input.reshape(-1), row, atol=1e-6)


def test_compare_json(gw: httpx.Client, gw_url: str, digits) -> None:
    r = gw.post(f"{gw_url}/v1/compare", json={"instances": digits[0][:5].tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["results"]) == {"tfserving", "torchserve"}
    for result in body["results"].values():
        assert len(result["labels"]) == 5 and result["latency_ms"] > 0
    agree = body["results"]["tfserving"]["labels"] == body["results"]["torchserve"]["labels"]
    assert body["labels_agree"] is agree
    assert 0 <= body["max_abs_probability_diff"] <= 1


def test_compare_image_three_backends(gw: httpx.Client, gw_url: str, digits) -> None:
    r = gw.post(
        f"{gw_url}/v1/compare",
        params={"backends": ",".join(BACKENDS), "include_input": "true"},
        files={"file": ("d.png", png_bytes(digits[0][1]), "image/png")},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["results"]) == set(BACKENDS) and np.asarray(body["input"]).shape == (28, 28)
    # TorchScript and ONNX are the same weights: same label.
    assert body["results"]["torchserve"]["labels"] == body["results"]["torchserve-onnx"]["labels"]


def test_backends_lists_each_with_readiness(gw: httpx.Client, gw_url: str, serving_stack) -> None:
    backends = {b["name"]: b for b in gw.get(f"{gw_url}/v1/backends").json()["backends"]}
    assert set(backends) == set(BACKENDS)
    assert all(b["ready"] and b["model_version"] == "1" and b["circuit"] == "closed" for b in backends.values())
    assert backends["tfserving"]["implementation"] == serving_stack.tf_implementation
    assert backends["tfserving"]["address"].endswith(str(serving_stack.ports.tfserving_rest))


def test_health_ready_metrics_docs(gw: httpx.Client, gw_url: str) -> None:
    assert gw.get(f"{gw_url}/healthz").json() == {"status": "ok"}
    ready = gw.get(f"{gw_url}/readyz")
    assert ready.status_code == 200 and set(ready.json()["ready_backends"]) == set(BACKENDS)
    metrics = gw.get(f"{gw_url}/metrics").text
    assert 'gateway_requests_total{backend="tfserving",route="/v1/predict",status="200"}' in metrics
    assert "gateway_request_latency_seconds_bucket" in metrics and "gateway_backend_up" in metrics
    assert gw.get(f"{gw_url}/docs").status_code == 200
    assert "/v1/predict/image" in gw.get(f"{gw_url}/openapi.json").json()["paths"]


def test_request_id_is_echoed(gw: httpx.Client, gw_url: str) -> None:
    assert gw.get(f"{gw_url}/healthz", headers={"X-Request-ID": "abc123"}).headers["x-request-id"] == "abc123"
    assert len(gw.get(f"{gw_url}/healthz").headers["x-request-id"]) == 32
