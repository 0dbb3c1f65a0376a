"""Printed, drawn and photographed-handwriting digits: the sets themselves, and how the session's
trained models (default training, augmentation included) do on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training import evalsets

# The goals are printed >= 0.90, drawn/handwritten >= 0.95, MNIST >= 0.93. Measured with the
# default seed (2026-11-23, one initialisation for both frameworks): printed 0.905 (Keras) / 0.921
# (PyTorch), drawn 0.983 / 0.973, handwritten photos 0.961 / 0.962, MNIST 0.968 / 0.971. Floors a
# little under the measured figures absorb floating-point differences between machines; the printed
# floor guards the gain (0.30 before this work), 2.5 points under Keras's figure.
FLOORS = {"mnist_test": 0.95, "drawn": 0.95, "handwritten": 0.95, "printed": 0.88}


def test_sets_are_deterministic_balanced_and_readable() -> None:
    for make, n in ((evalsets.printed, len(evalsets.FONTS) * 10 * evalsets.PRINTED_VARIANTS), (evalsets.drawn, 300)):
        a = make()
        assert len(a.images) == n and np.bincount(a.labels).tolist() == [n // 10] * 10
        assert a.rows.shape == (n, 784) and a.rows.dtype == np.float32 and a.rows.min() >= 0 and a.rows.max() <= 1
        b = make.__wrapped__()  # bypass the cache: the same seed renders the same bytes
        assert b.images == a.images
        assert make(seed=1).images != a.images  # a development set is a different rendering


def test_every_font_is_present() -> None:
    for font in evalsets.FONTS:
        assert (evalsets.FONT_DIR / font).is_file(), font


def test_handwritten_photos_are_the_held_out_digits(test_split) -> None:
    s = evalsets.handwritten(test_split.x_test[:20], test_split.y_test[:20])
    assert len(s.images) == 20 and (s.labels == test_split.y_test[:20]).all()
    assert all(img[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0") for img in s.images)


@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_trained_models_read_printed_drawn_and_photographed_digits(artifacts: Path, framework: str) -> None:
    (version,) = json.loads((artifacts / "manifest.json").read_text())["versions"]
    evaluation = version["frameworks"][framework]["accuracy"]
    for key, floor in FLOORS.items():
        assert evaluation[key] >= floor, (framework, key, evaluation)


def test_report_shows_augmentation_and_every_evaluation(artifacts: Path) -> None:
    md = (artifacts / "training_report.md").read_text()
    for needle in ("printed digits", "drawn on the page", "photographed", "Augmentation: copies=8", "36000 rows"):
        assert needle in md, needle
    assert (artifacts / "training_report_inputs.png").read_bytes().startswith(b"\x89PNG")
