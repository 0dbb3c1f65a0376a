"""TorchServe (real, 0.12.0) with our handler: both models, batches, per-request errors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch

from mnist_serving.ports import local_url
from training.train import artifact_paths

REPO = Path(__file__).resolve().parents[2]

MODELS = ["mnist", "mnist_onnx"]


@pytest.fixture(scope="module")
def in_process(artifact_dir, rows: np.ndarray) -> dict[str, np.ndarray]:
    paths = artifact_paths(artifact_dir, 1)
    with torch.no_grad():
        ts = torch.jit.load(str(paths["torchscript"]))(torch.from_numpy(rows)).numpy()
    onnx = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"]).run(None, {"pixels": rows})[0]
    return {"mnist": ts, "mnist_onnx": onnx}


@pytest.mark.parametrize("model", MODELS)
def test_predictions_match_in_process_artifacts(
    http: httpx.Client, ts_url: str, rows: np.ndarray, in_process: dict[str, np.ndarray], model: str
) -> None:
    r = http.post(f"{ts_url}/predictions/{model}", json={"instances": rows.tolist()})
    assert r.status_code == 200, r.text
    served = np.asarray(r.json()["predictions"])
    assert served.shape == (len(rows), 10)
    np.testing.assert_allclose(served, in_process[model], atol=1e-6)


@pytest.mark.parametrize("model", MODELS)
def test_bare_list_and_single_row(http: httpx.Client, ts_url: str, rows: np.ndarray, model: str) -> None:
    bare = http.post(f"{ts_url}/predictions/{model}", json=rows[:2].tolist())
    single = http.post(f"{ts_url}/predictions/{model}", json=rows[0].tolist())
    assert len(bare.json()["predictions"]) == 2 and len(single.json()["predictions"]) == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"instances": [[0.1, 0.2]]}, "784"),
        ({"instances": [[0.1] * 784, [0.1] * 10]}, "equal length"),
        ({"rows": []}, "instances"),
        (b"{oops", "not valid JSON"),
        ({"instances": [[True] * 784]}, "not booleans"),
        ({"instances": [["0.1"] * 784]}, "not strings"),
    ],
)
def test_bad_requests_are_400(http: httpx.Client, ts_url: str, body, needle: str) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = http.post(f"{ts_url}/predictions/mnist", headers={"Content-Type": "application/json"}, **kwargs)
    assert r.status_code == 400
    assert needle in r.json()["message"]


def _png(image: str) -> bytes:
    import io

    from PIL import Image

    if image == "digit":
        return (REPO / "examples" / "digit-9.png").read_bytes()
    png = io.BytesIO()
    Image.new("L", (28, 28), 255).save(png, format="PNG")
    return png.getvalue()


@pytest.mark.parametrize(
    ("content_type", "image"),
    [
        ("image/png", "digit"),
        ("application/json", "digit"),
        ("application/octet-stream", "blank"),
    ],
)
def test_an_image_sent_to_torchserve_is_named_with_where_to_send_it(
    http: httpx.Client, ts_url: str, content_type: str, image: str
) -> None:
    """An image posted straight to TorchServe, with an image type or mislabelled: the answer says it
    is an image and names the gateway's image route, not a decoder's complaint."""
    r = http.post(f"{ts_url}/predictions/mnist", headers={"Content-Type": content_type}, content=_png(image))
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert "PNG image, not rows" in message and "POST /v1/predict/image" in message, message


def test_an_image_uploaded_as_a_form_file_to_torchserve_is_named(http: httpx.Client, ts_url: str) -> None:
    """`curl -F file=@digit.png` (multipart), the gateway's image route's shape, sent to TorchServe."""
    r = http.post(f"{ts_url}/predictions/mnist", files={"file": ("digit-9.png", _png("digit"), "image/png")})
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert "PNG image, not rows" in message and "POST /v1/predict/image" in message, message


@pytest.mark.parametrize("form", ["png", "fields"])
def test_a_form_encoded_body_is_told_to_send_json_or_an_image_to_the_gateway(
    http: httpx.Client, ts_url: str, form: str
) -> None:
    """What `curl --data-binary @file` sends (application/x-www-form-urlencoded): TorchServe's frontend
    decodes it into form fields, and drops a PNG's bytes that hold no '=' or '&' (the digit's bytes
    it refuses itself, 500: tests/serving/test_torchserve_logging.py), so the handler cannot tell an
    image from other fields and names both ways out."""
    if form == "png":
        r = http.post(
            f"{ts_url}/predictions/mnist",
            content=_png("blank"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        r = http.post(f"{ts_url}/predictions/mnist", data={"instances": "[[0.5]]"})
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert "form data, not JSON" in message and "Content-Type: application/json" in message, message
    assert "POST /v1/predict/image" in message, message


def test_unknown_model_is_404(http: httpx.Client, ts_url: str) -> None:
    assert http.post(f"{ts_url}/predictions/nope", json={"instances": [[0.0] * 784]}).status_code == 404


async def _burst(url: str, bodies: Sequence[object]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        return await asyncio.gather(*(client.post(url, json=b) for b in bodies))


@pytest.mark.parametrize("model", MODELS)
def test_concurrent_requests_form_batches_and_bad_ones_fail_alone(ts_url: str, rows: np.ndarray, model: str) -> None:
    good = {"instances": rows[:1].tolist()}
    bad = {"instances": [[0.5] * 3]}
    bodies = [bad if i % 8 == 0 else good for i in range(64)]
    responses = asyncio.run(_burst(f"{ts_url}/predictions/{model}", bodies))
    for body, r in zip(bodies, responses, strict=True):
        assert r.status_code == (400 if body is bad else 200), r.text
    batch_sizes = [int(r.headers["x-batch-requests"]) for r in responses]
    assert max(batch_sizes) > 1, "no batch formed from 64 concurrent requests"


def test_readiness_is_per_worker(http: httpx.Client, stack) -> None:
    for model in MODELS:
        (desc,) = http.get(local_url(stack.ports.torchserve_management, f"/models/{model}")).json()
        assert desc["batchSize"] == 32 and [w["status"] for w in desc["workers"]] == ["READY"]


def test_the_one_readiness_check_runs_as_the_probes_run_it(stack) -> None:
    """``python -m serving.torchserve.ready`` (the image's HEALTHCHECK, compose's healthcheck and the
    Kubernetes and KServe probes): 0 against the running TorchServe, 1 where nothing answers."""
    import subprocess
    import sys

    from serving.native.process import free_ports
    from tests.conftest import REPO

    def run(url: str, env: dict[str, str] | None = None) -> int:
        cmd = [sys.executable, "-m", "serving.torchserve.ready", url]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=30, env=env).returncode

    assert run(local_url(stack.ports.torchserve_management)) == 0
    assert run(local_url(free_ports(1)[0])) == 1
    # In the image the entrypoint warms TorchServe's request path once every worker is READY and then
    # writes a marker; until it exists, not ready.
    import os
    import tempfile

    from serving.torchserve.ready import WARMED_MARKER_ENV, warm_frontend

    with tempfile.TemporaryDirectory() as tmp:
        marker = f"{tmp}/warmed"
        env = {**os.environ, WARMED_MARKER_ENV: marker}
        assert run(local_url(stack.ports.torchserve_management), env) == 1
        warm_frontend(local_url(stack.ports.torchserve_inference), n=3)  # real requests, every model
        open(marker, "w").close()
        assert run(local_url(stack.ports.torchserve_management), env) == 0


@pytest.mark.parametrize(
    ("statuses", "ready"),
    [(["READY"], True), (["READY", "READY"], True), (["READY", "UNLOADING"], False), ([], False), (None, False)],
)
def test_every_worker_must_be_ready(statuses: list[str] | None, ready: bool) -> None:
    from serving.torchserve.ready import MODELS as READY_MODELS
    from serving.torchserve.ready import every_worker_ready

    entries = None if statuses is None else [{"workers": [{"status": s} for s in statuses]}]
    assert every_worker_ready(entries) is ready
    assert list(READY_MODELS) == MODELS


def test_model_api_is_on_natively_for_rollouts_and_off_in_the_shipped_config(http: httpx.Client, stack) -> None:
    """Natively (and in compose) `make rollout` registers versions through the management API
    (serving/environments.py's TS_ENABLE_MODEL_API); the shipped config, which Kubernetes runs, keeps
    it off. Asked to register an archive its store does not hold, the native server looks for it."""
    from serving.torchserve import config

    r = http.post(local_url(stack.ports.torchserve_management, "/models"), params={"url": "no-such-model-v9.mar"})
    assert r.status_code == 404 and "not found" in r.text.lower(), r.text
    assert config.read()["enable_model_api"] == "false"


def test_prometheus_metrics(http: httpx.Client, stack) -> None:
    text = http.get(local_url(stack.ports.torchserve_metrics, "/metrics")).text
    assert "ts_inference_latency_microseconds" in text or "ts_queue_latency_microseconds" in text


@pytest.mark.parametrize("path", ["/predictions/mnist", "/predictions/mnist_onnx", "/predictions/mnist/1"])
def test_every_answer_names_the_version_that_computed_it(
    http: httpx.Client, ts_url: str, rows: np.ndarray, path: str
) -> None:
    """The handler's X-Model-Version (the archive's modelVersion), on every request of a batch: the
    gateway reads it where it cannot ask the management API which version is the default."""
    r = http.post(f"{ts_url}{path}", json={"instances": rows[:2].tolist()})
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
    bad = http.post(f"{ts_url}{path}", json={"instances": [[0.1, 0.2]]})
    assert bad.status_code == 400 and bad.headers["X-Model-Version"] == "1"


def test_the_version_header_is_set_for_each_request_of_a_batch(rows: np.ndarray) -> None:
    from serving.torchserve.mnist_handler import VERSION_HEADER, MnistHandler

    class Context:
        def __init__(self) -> None:
            self.headers: dict[tuple[int, str], str] = {}

        def set_response_header(self, idx: int, key: str, value: str) -> None:
            self.headers[(idx, key)] = value

        def set_response_content_type(self, idx: int, value: str) -> None:
            pass

        def set_response_status(self, code: int, phrase: str, idx: int) -> None:
            pass

    handler = MnistHandler()
    handler.version, handler.initialized = "7", True
    handler._predict = lambda x: np.full((len(x), 10), 0.1, dtype=np.float32)
    context = Context()
    handler.handle([{"body": {"instances": rows[:1].tolist()}}, {"body": {"instances": [[1.0]]}}], context)
    assert context.headers[(0, VERSION_HEADER)] == context.headers[(1, VERSION_HEADER)] == "7"
