"""Training report: curves side by side, both confusion matrices, and a markdown summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mnist_serving.spec import NUM_CLASSES
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


def summary_markdown(version: int, data: dict[str, object], rows: list[tuple[str, float, float]], png_name: str) -> str:
    lines = [
        f"# Training report — model version {version}",
        "",
        f"Data: {data['source']} ({data['split']}); {data['train_size']} train / {data['test_size']} test.",
        "",
        "| framework | test accuracy | training time (s) |",
        "|---|---|---|",
        *(f"| {name} | {acc:.4f} | {secs:.1f} |" for name, acc, secs in rows),
        "",
        f"![curves and confusion matrices]({png_name})",
        "",
    ]
    return "\n".join(lines)
