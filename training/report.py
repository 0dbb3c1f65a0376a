"""Training report: curves side by side, both confusion matrices, and a markdown summary."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from mnist_serving.image import ImageError, decode_image
from mnist_serving.spec import NUM_CLASSES, UNCERTAIN_BELOW
from training.evalsets import MAX_PIXELS, EvalSet
from training.history import History
from training.nondigits import NonDigits
from training.uncertainty import Measured


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    m = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def plot(histories: list[History], confusions: dict[str, np.ndarray], out: Path, title: str) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(12, 10))
    (ax_loss, ax_acc), cm_axes = axes
    for h in histories:
        epochs = np.arange(1, len(h.loss) + 1)
        ax_loss.plot(epochs, h.loss, "-o", label=f"{h.framework} train")
        ax_loss.plot(epochs, h.test_loss, "--s", label=f"{h.framework} test")
        ax_acc.plot(epochs, h.accuracy, "-o", label=f"{h.framework} train")
        ax_acc.plot(epochs, h.test_accuracy, "--s", label=f"{h.framework} test")
    ax_loss.set(title="Loss per epoch", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="Accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    for ax, (name, cm) in zip(cm_axes, confusions.items(), strict=True):
        ax.imshow(cm, cmap="Blues")
        ax.set(title=f"{name} confusion matrix (test)", xlabel="predicted", ylabel="true")
        ax.set_xticks(range(NUM_CLASSES))
        ax.set_yticks(range(NUM_CLASSES))
        threshold = cm.max() / 2
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > threshold else "black")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_inputs(originals: np.ndarray, trained: np.ndarray, sets: tuple[EvalSet, ...], out: Path) -> None:
    """What the models learn from and are judged on: training digits, augmented training rows, and
    each evaluation set as uploaded and as the model receives it (28x28 after preprocessing)."""
    per_row = 16
    rows: list[tuple[str, Sequence[np.ndarray]]] = [
        ("MNIST training digits", list(originals[:per_row])),
        ("augmented training rows", list(trained[-per_row:])),
    ]
    for e in sets:
        step = max(1, len(e.images) // per_row)
        pick = list(range(0, len(e.images), step))[:per_row]
        uploads = [np.asarray(Image.open(io.BytesIO(e.images[i])).convert("L")) for i in pick]
        rows += [(f"{e.name}: as uploaded", uploads), (f"{e.name}: model input", list(e.rows[pick]))]
    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 0.7, len(rows) * 0.85))
    for r, (title, images) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(images):
                img = np.asarray(images[c])
                ax.imshow(img.reshape(28, 28) if img.ndim == 1 else img, cmap="gray")
        axes[r, 0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


EVAL_NAMES = {
    "mnist_test": "MNIST held-out digits (JSON rows)",
    "printed": "printed digits (19 fonts, photographed/scanned)",
    "drawn": "drawn on the page's canvas",
    "handwritten": "MNIST held-out digits photographed on paper",
}


def plot_uncertainty(measured: Mapping[str, Measured], sets: Sequence[NonDigits], out: Path) -> None:
    """Top probability of real digits and of non-digits per model, with the threshold; and what the
    non-digits look like, as uploaded and as the model receives them."""
    per_row = 12
    previews = [s for s in sets if s.images]
    fig = plt.figure(figsize=(per_row * 0.9, 3.5 + len(previews) * 2 * 0.9), layout="constrained")
    halves: Any = fig.subfigures(2, 1, height_ratios=[3.5, len(previews) * 2 * 0.9])
    top, bottom = halves
    bins = [i / 40 for i in range(41)]
    for ax, (framework, m) in zip(top.subplots(1, len(measured)), measured.items(), strict=True):
        digits = np.concatenate([p.max(1) for p, _ in m.digits.values()])
        others = np.concatenate([p.max(1) for p in m.nondigits.values()])
        ax.hist(digits, bins, alpha=0.6, density=True, label=f"digits ({len(digits)})")
        ax.hist(others, bins, alpha=0.6, density=True, label=f"non-digits ({len(others)})")
        ax.axvline(UNCERTAIN_BELOW, color="k", ls="--", label=f"uncertain below {UNCERTAIN_BELOW}")
        ax.set(title=f"{framework}: top probability", xlabel="top probability", ylabel="density (log)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes = bottom.subplots(2 * len(previews), per_row)
    for r, s in enumerate(previews):
        step = max(1, len(s.images) // per_row)
        picks = list(range(0, len(s.images), step))[:per_row]
        for c in range(per_row):
            up, down = axes[2 * r, c], axes[2 * r + 1, c]
            up.axis("off")
            down.axis("off")
            if c >= len(picks):
                continue
            data = s.images[picks[c]]
            up.imshow(np.asarray(Image.open(io.BytesIO(data)).convert("L")), cmap="gray")
            try:
                down.imshow(decode_image(data, MAX_PIXELS), cmap="gray")
            except ImageError as exc:
                down.text(0.5, 0.5, f"refused:\n{exc.type}", ha="center", va="center", fontsize=6)
        axes[2 * r, 0].set_title(f"{s.name}: as uploaded / model input", fontsize=8, loc="left")
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def versions_markdown(manifest: Mapping[str, Any]) -> list[str]:
    """Every version in the manifest: status, weights, accuracy and uncertainty rates per framework."""
    lines = [
        "| version | status | weights (Keras / PyTorch) | MNIST test accuracy | printed | "
        "MNIST digits flagged uncertain | non-digits flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in manifest.get("versions", []):
        fw = v["frameworks"]
        status = f"**bad**: {v['bad']['kind']}" if v.get("bad") else v["status"]
        lines.append(
            f"| {v['version']} | {status} | {v['weights']['keras']} / {v['weights']['pytorch']} | "
            f"{_accuracy_pair(fw, 'mnist_test')} | {_accuracy_pair(fw, 'printed')} | "
            f"{_uncertainty_pair(fw, 'false_alarms', 'mnist_test')} | {_uncertainty_pair(fw, 'detections', 'all')} |"
        )
    return lines


def _accuracy_pair(frameworks: Mapping[str, Any], key: str) -> str:
    return " / ".join(
        f"{frameworks[f]['accuracy'][key]:.4f}" if key in frameworks[f]["accuracy"] else "—"
        for f in ("keras", "pytorch")
    )


def _uncertainty_pair(frameworks: Mapping[str, Any], section: str, key: str) -> str:
    return " / ".join(
        _pct(frameworks[f]["uncertainty"][section][key]) if frameworks[f].get("uncertainty") else "—"
        for f in ("keras", "pytorch")
    )


def summary_markdown(
    version: int,
    data: Mapping[str, object],
    seconds: Mapping[str, float],
    evaluation: Mapping[str, Mapping[str, float]],
    augmentation: Mapping[str, object],
    pngs: list[str],
    manifest: Mapping[str, Any] | None = None,
) -> str:
    frameworks = list(evaluation)
    lines = [
        f"# Training report — model version {version}",
        "",
        f"Data: {data['source']} ({data['split']}); {data['train_size']} train "
        f"({data['train_size_augmented']} rows with augmentation) / {data['test_size']} test.",
        "",
        "Held-out test accuracy of the exported models (the image sets go through the gateway's image "
        "preprocessing; none is trained on):",
        "",
        "| evaluation set | " + " | ".join(frameworks) + " |",
        "|---|" + "---|" * len(frameworks),
        *(
            f"| {EVAL_NAMES.get(k, k)} | " + " | ".join(f"{evaluation[f][k]:.4f}" for f in frameworks) + " |"
            for k in evaluation[frameworks[0]]
        ),
        "| training time (s) | "
        + " | ".join(f"{seconds[f]:.1f}" if f in seconds else "— (weights copied)" for f in frameworks)
        + " |",
        "",
        "Augmentation: " + ", ".join(f"{k}={v}" for k, v in augmentation.items()) + ".",
        "",
    ]
    if manifest:
        lines += [
            f"Every version in the manifest (uncertain: top probability below {UNCERTAIN_BELOW}; non-digits: "
            "letters, a word, noise, shapes, a cat, random rows; `python -m training.uncertainty` for the details):",
            "",
            *versions_markdown(manifest),
            "",
        ]
    lines += [*(f"![{p}]({p})" for p in pngs), ""]
    return "\n".join(lines)
