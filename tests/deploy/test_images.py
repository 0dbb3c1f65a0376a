"""Images are set per overlay, GPU overlays keep their own names, and the tag follows the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from containers import images
from tests.conftest import REPO
from tests.deploy.conftest import render_dir

REGISTRY = "registry.example.com/team"


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    """A scratch copy of k8s/ so the overlays can be edited as a user would."""
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    return tmp_path / "k8s"


def _images(folder: Path) -> dict[str, str]:
    out = {}
    for doc in render_dir(folder):
        if doc["kind"] in ("Deployment", "Job"):
            out[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]["containers"][0]["image"]
    return out


def test_setting_the_gpu_overlay_leaves_the_cpu_overlay_alone(k8s_copy: Path) -> None:
    cpu_before = _images(k8s_copy / "overlays/cpu")
    block = images.set_images(k8s_copy / "overlays/gpu/kustomization.yaml", REGISTRY, "0.1.0-abc", gpu=True)
    assert block.startswith("images:\n")
    gpu = _images(k8s_copy / "overlays/gpu")
    assert gpu == {
        "gateway": f"{REGISTRY}/mnist-serving/gateway:0.1.0-abc",
        "tfserving": f"{REGISTRY}/mnist-serving/tfserving-gpu:0.1.0-abc",
        "torchserve": f"{REGISTRY}/mnist-serving/torchserve-gpu:0.1.0-abc",
    }
    assert _images(k8s_copy / "overlays/cpu") == cpu_before
    assert (
        "Point the images" not in block
        and "# NVIDIA GPU nodes" in (k8s_copy / "overlays/gpu/kustomization.yaml").read_text()
    )


def test_setting_the_cpu_overlay_keeps_cpu_images(k8s_copy: Path) -> None:
    images.set_images(k8s_copy / "overlays/cpu/kustomization.yaml", REGISTRY, "0.1.0-abc", gpu=False)
    assert _images(k8s_copy / "overlays/cpu")["tfserving"] == f"{REGISTRY}/mnist-serving/tfserving:0.1.0-abc"
    assert _images(k8s_copy / "overlays/gpu")["tfserving"].split(":")[0] == "mnist-serving/tfserving-gpu"


def test_the_load_test_image_is_set_too(k8s_copy: Path) -> None:
    images.set_images(k8s_copy / "load-test/kustomization.yaml", REGISTRY, "t1", gpu=False)
    assert set(_images(k8s_copy / "load-test").values()) == {f"{REGISTRY}/mnist-serving/locust:t1"}


def test_every_image_an_overlay_names_is_known() -> None:
    known = {i.name for i in images.IMAGES.values()}
    for folder, _gpu in images.OVERLAYS.values():
        assert set(images.used_images(folder / "kustomization.yaml")) <= known, folder
        assert images.used_images(folder / "kustomization.yaml"), folder


def test_the_tag_changes_when_the_model_does(tmp_path: Path) -> None:
    manifest = {
        "artifacts": [{"path": "torchserve/1/mnist.pt", "sha256": "a" * 64}, {"path": "tf/1", "sha256": "b" * 64}]
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    first = images.model_tag(path)
    assert first.startswith(images.version() + "-") and first == images.model_tag(path)
    manifest["artifacts"][0]["sha256"] = "c" * 64
    path.write_text(json.dumps(manifest))
    assert images.model_tag(path) != first


def test_gpu_images_build_from_gpu_bases() -> None:
    tf, ts = images.IMAGES["tfserving"], images.IMAGES["torchserve"]
    assert dict(tf.gpu_build_args or ())["TFSERVING_IMAGE"].endswith("-gpu")
    assert dict(ts.gpu_build_args or ())["VARIANT"] == "gpu"
    assert images.IMAGES["gateway"].repository("r", gpu=True) == "r/mnist-serving/gateway"
    for image in images.IMAGES.values():
        assert (REPO / image.dockerfile).exists()
    for key, _ in (tf.gpu_build_args or ()) + (ts.gpu_build_args or ()):
        assert f"ARG {key}" in (REPO / tf.dockerfile).read_text() + (REPO / ts.dockerfile).read_text()
