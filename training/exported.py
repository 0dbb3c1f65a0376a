"""Where a version's exported models live, what serves each, and each loaded the way its server does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_serving.spec import INPUT_NAME, ONNX_MODEL_NAME, OUTPUT_NAME, SIGNATURE_NAME, TF_MODEL_NAME, TORCH_MODEL_NAME
from training import manifest

TF_DIR = "tfserving"
TORCH_DIR = "torchserve"
Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Kind:
    framework: str  # keras or pytorch
    format: str
    backend: str  # the gateway's backend that serves it
    model_name: str  # the name its server registers


MODELS = {
    "savedmodel": Kind("keras", "tf_saved_model", "tfserving", TF_MODEL_NAME),
    "torchscript": Kind("pytorch", "torchscript", "torchserve", TORCH_MODEL_NAME),
    "onnx": Kind("pytorch", "onnx", "torchserve-onnx", ONNX_MODEL_NAME),
}
# The backend each framework's reported figures come from (ONNX answers as TorchScript does, to 1e-6).
FRAMEWORK_BACKEND = {"keras": "tfserving", "pytorch": "torchserve"}


def artifact_paths(root: Path, version: int) -> dict[str, Path]:
    return {
        "savedmodel": root / TF_DIR / TF_MODEL_NAME / str(version),
        "torchscript": root / TORCH_DIR / str(version) / "mnist.pt",
        "onnx": root / TORCH_DIR / str(version) / "mnist.onnx",
    }


def entries(root: Path, paths: dict[str, Path]) -> list[dict[str, Any]]:
    """The manifest's entries of the three exported models (sha256 of what is on disk now)."""
    out = []
    for name, kind in MODELS.items():
        out.append(
            {
                "name": name,
                "framework": kind.framework,
                "format": kind.format,
                "backend": kind.backend,
                "model_name": kind.model_name,
                "path": paths[name].relative_to(root).as_posix(),
                "sha256": manifest.sha256_path(paths[name]),
                **({"signature": SIGNATURE_NAME} if name == "savedmodel" else {}),
            }
        )
    return out


def predictors(root: Path, version: int) -> dict[str, Predict]:
    """backend -> rows to probabilities, from the files: the SavedModel's serving signature (what TF
    Serving runs), the TorchScript file, the ONNX file in ONNX Runtime."""
    import onnxruntime as ort
    import tensorflow as tf
    import torch

    paths = artifact_paths(root, version)
    signature = tf.saved_model.load(str(paths["savedmodel"])).signatures[SIGNATURE_NAME]
    scripted = torch.jit.load(str(paths["torchscript"])).eval()
    session = ort.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])

    def tfserving(x: np.ndarray) -> np.ndarray:
        return np.asarray(signature(**{INPUT_NAME: tf.constant(_f32(x))})[OUTPUT_NAME])

    def torchserve(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return scripted(torch.from_numpy(_f32(x))).numpy()

    def torchserve_onnx(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: _f32(x)})[0])

    return {"tfserving": tfserving, "torchserve": torchserve, "torchserve-onnx": torchserve_onnx}


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)
