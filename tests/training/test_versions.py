"""Versions from one manifest: a second version beside the first (here with the same weights in both
frameworks), the archives per version, the typed reader and its held-out check, and the
deliberately bad versions a rollout must refuse. One small real training run (1 epoch) for all."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mnist_serving.spec import BACKENDS, INPUT_NAME, OUTPUT_NAME
from tests.training.test_artifacts import session_predict
from training import archives, bad_version, manifest
from training.augment import Augmentation
from training.hyperparams import HyperParams
from training.manifest import Manifest, ManifestError
from training.train import artifact_paths, run

SAME_WEIGHTS_TOLERANCE = 1e-5  # the goal: one function on both servers


@pytest.fixture(scope="module")
def versions(artifacts: Path, test_split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's version 1, then version 2 trained with PyTorch's weights in both frameworks,
    then bad versions 3 (wrong answers) and 4 (fails to load), all in a copy of the artifacts."""
    root = Path(shutil.copytree(artifacts, tmp_path_factory.mktemp("versions") / "artifacts"))
    run(root, 2, HyperParams(epochs=1), test_split, Augmentation(copies=0), same_weights="pytorch")
    bad_version.write(root, 3, "wrong-answers")
    bad_version.write(root, 4, "fails-to-load", source=1)
    return root


def _served(paths: dict[str, Path], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Each backend's model loaded as its server loads it: TF Serving's session loader, TorchScript, ONNX."""
    with torch.no_grad():
        ts = torch.jit.load(str(paths["torchscript"]))(torch.from_numpy(rows)).numpy()
    onnx = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"]).run(
        [OUTPUT_NAME], {INPUT_NAME: rows}
    )[0]
    tf, _ = session_predict(paths["savedmodel"], rows)
    return {"tfserving": tf, "torchserve": ts, "torchserve-onnx": onnx}


def test_a_new_version_keeps_the_first_and_both_are_listed(artifacts: Path, versions: Path) -> None:
    before = Manifest.load(artifacts).version(1)
    m = Manifest.load(versions)
    assert [v.version for v in m.versions] == [1, 2, 3, 4]
    assert m.version(1).artifacts == before.artifacts  # same files, same hashes
    assert m.changed_files(1) == [] and m.changed_files(2) == []
    assert m.good_versions == (1, 2) and m.latest_version == 2  # bad versions are never the default
    v2 = m.version(2)
    assert {a.name for a in v2.artifacts} == {"savedmodel", "torchscript", "onnx", "torchscript_mar", "onnx_mar"}
    assert {a.backend for a in v2.artifacts} == set(BACKENDS)
    assert v2.accuracy["pytorch"]["mnist_test"] > 0.8 and v2.raw["hyperparameters"]["epochs"] == 1


def test_archives_of_every_version_sit_side_by_side_with_their_version_inside(versions: Path) -> None:
    m = Manifest.load(versions)
    for n in (1, 2):
        for name, model in (("torchscript_mar", "mnist"), ("onnx_mar", "mnist_onnx")):
            a = m.version(n).artifact(name)
            # one folder (TorchServe's model store), names that differ per version (its URLs are file names)
            assert a.path == f"{archives.STORE}/{model}-v{n}.mar" and a.model_name == model
            with zipfile.ZipFile(a.file(versions)) as z:
                mar = json.loads(z.read("MAR-INF/MANIFEST.json"))
                assert mar["model"]["modelName"] == model and mar["model"]["modelVersion"] == str(n)
                serialized = z.read(mar["model"]["serializedFile"])
            source = m.version(n).artifact("torchscript" if model == "mnist" else "onnx")
            assert serialized == source.file(versions).read_bytes()  # the archive packs this version's model


def test_same_weights_agree_within_1e5_on_every_server_path(versions: Path, test_split) -> None:
    m = Manifest.load(versions)
    v2 = m.version(2)
    assert dict(v2.weights) == {"keras": "pytorch", "pytorch": "pytorch"} and v2.same_weights
    assert v2.raw["frameworks"]["keras"]["history"] is None  # Keras was not trained, its weights were copied
    rows = np.concatenate([m.check_rows(), test_split.x_test])
    out = _served(artifact_paths(versions, 2), rows)
    for a in BACKENDS:
        for b in BACKENDS:
            np.testing.assert_allclose(out[a], out[b], atol=SAME_WEIGHTS_TOLERANCE, rtol=0)
    recorded = v2.raw["agreement"]["max_abs_diff"]
    assert max(recorded.values()) <= SAME_WEIGHTS_TOLERANCE
    # Two separately trained networks (version 1) are far apart: the option is what makes them agree.
    assert max(m.version(1).raw["agreement"]["max_abs_diff"].values()) > 0.05


@pytest.mark.parametrize("n", [1, 2])
def test_every_server_path_passes_its_versions_held_out_check(versions: Path, n: int) -> None:
    m = Manifest.load(versions)
    out = _served(artifact_paths(versions, n), m.check_rows())
    for backend, probabilities in out.items():
        result = m.version(n).verify(backend, probabilities)
        assert result.passed, result.message
        assert result.max_abs_diff <= 1e-5  # the servers' loaders reproduce the exported answers


def test_the_check_fails_on_another_versions_answers(versions: Path) -> None:
    m = Manifest.load(versions)
    v1_answers = _served(artifact_paths(versions, 1), m.check_rows())["torchserve"]
    result = m.version(2).verify("torchserve", v1_answers)
    assert not result.passed and result.max_abs_diff > m.version(2).tolerance
    assert not m.version(2).verify("torchserve", v1_answers[:5]).passed  # a short answer fails too


def test_a_wrong_answers_version_loads_but_fails_its_check_on_every_server(versions: Path) -> None:
    m = Manifest.load(versions)
    v3 = m.version(3)
    assert v3.status == "bad" and not v3.ok and v3.bad is not None
    assert v3.bad.kind == "wrong-answers" and v3.bad.from_version == 2
    out = _served(artifact_paths(versions, 3), m.check_rows())  # loads everywhere
    for backend, probabilities in out.items():
        result = v3.verify(backend, probabilities)
        assert not result.passed and len(result.wrong_labels) == len(m.check_labels), result.message
    assert v3.accuracy["pytorch"]["held_out_check"] < 0.2


def test_a_fails_to_load_version_fails_to_load(versions: Path) -> None:
    m = Manifest.load(versions)
    v4 = m.version(4)
    assert v4.bad is not None and v4.bad.kind == "fails-to-load" and m.changed_files(4) == []
    paths = artifact_paths(versions, 4)
    with pytest.raises(Exception):  # noqa: B017 - each loader raises its own kind
        torch.jit.load(str(paths["torchscript"]))
    with pytest.raises(Exception):  # noqa: B017
        ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception):  # noqa: B017
        session_predict(paths["savedmodel"], m.check_rows())
    assert (versions / v4.artifact("torchscript_mar").path).is_file()  # an archive TorchServe will fail to load


def test_the_report_lists_every_version(versions: Path) -> None:
    md = (versions / "training_report.md").read_text()  # written by version 2's run, before 3 and 4
    assert "| 1 | ok | keras / pytorch |" in md and "| 2 | ok | pytorch / pytorch |" in md


def test_schema_1_manifests_are_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / manifest.MANIFEST).write_text(json.dumps({"artifacts": [{"model_version": 1}], "latest_version": 1}))
    with pytest.raises(ManifestError, match="make train"):
        Manifest.load(tmp_path)
    with pytest.raises(ManifestError, match="schema 1 and lists versions \\[1\\]"):
        manifest.record_version(tmp_path, {"version": 2, "status": "ok"}, [], {})
    with pytest.raises(ManifestError, match="make train VERSION=9"):
        Manifest(tmp_path, None, (), manifest.CHECK_FILE, "", ()).version(9)


def test_a_bad_version_never_overwrites_a_good_one(versions: Path) -> None:
    with pytest.raises(ValueError, match="overwrite"):
        bad_version.write(versions, 1, "wrong-answers", source=2)
    with pytest.raises(ManifestError, match="good version"):
        bad_version.write(versions, 5, "wrong-answers", source=3)
