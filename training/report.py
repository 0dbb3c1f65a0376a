"""Training report: curves side by side, both confusion matrices, and a markdown summary."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from mnist_serving.spec import NUM_CLASSES
from training.evalsets import EvalSet
from training.history import History


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


def summary_markdown(
    version: int,
    data: dict[str, object],
    seconds: dict[str, float],
    evaluation: dict[str, dict[str, float]],
    augmentation: dict[str, object],
    pngs: list[str],
) -> str:
    frameworks = list(evaluation)
    lines = [
        f"# Training report — model version {version}",
        "",
        f"Data: {data['source']} ({data['split']}); {data['train_size']} train "
        f"({data['train_size_augmented']} rows with augmentation) / {data['test_size']} test.",
        "",
        "Held-out test accuracy (the image sets go through the gateway's image preprocessing; none is trained on):",
        "",
        "| evaluation set | " + " | ".join(frameworks) + " |",
        "|---|" + "---|" * len(frameworks),
        *(
            f"| {EVAL_NAMES.get(k, k)} | " + " | ".join(f"{evaluation[f][k]:.4f}" for f in frameworks) + " |"
            for k in evaluation[frameworks[0]]
        ),
        "| training time (s) | " + " | ".join(f"{seconds[f]:.1f}" for f in frameworks) + " |",
        "",
        "Augmentation: " + ", ".join(f"{k}={v}" for k, v in augmentation.items()) + ".",
        "",
        *(f"![{p}]({p})" for p in pngs),
        "",
    ]
    return "\n".join(lines)
