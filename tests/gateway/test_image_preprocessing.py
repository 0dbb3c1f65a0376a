"""MNIST-style preprocessing: a dark digit on light paper ends up like an MNIST digit."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFilter

from mnist_serving.image import decode_image


def _photo_of(row: np.ndarray, *, fmt: str = "JPEG", size: tuple[int, int] = (300, 220), alpha: bool = False) -> bytes:
    """A 'scan': the digit drawn large, dark on light grey paper, off-centre, blurred and noisy."""
    digit = Image.fromarray(np.round(row.reshape(28, 28) * 255).astype(np.uint8)).resize((150, 150))
    ink = np.asarray(digit.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32) / 255
    paper = np.full((size[1], size[0]), 225.0)
    top, left = 40, 110
    paper[top : top + 150, left : left + 150] -= ink * 190  # dark strokes
    paper += np.random.default_rng(0).normal(0, 4, paper.shape)
    img = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    if alpha:
        img = img.convert("RGBA")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(img.shape)
    return float((ys * img).sum() / img.sum()), float((xs * img).sum() / img.sum())


@pytest.mark.parametrize(("fmt", "alpha"), [("JPEG", False), ("PNG", True)])
def test_dark_on_light_becomes_mnist_convention(digits, fmt: str, alpha: bool) -> None:
    row = digits[0][0]
    out = decode_image(_photo_of(row, fmt=fmt, alpha=alpha), max_pixels=10**7)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.max() == pytest.approx(1.0, abs=0.05)  # white digit ...
    assert np.median(out) < 0.02 and out[:3].max() < 0.05  # ... on black
    ys, xs = np.nonzero(out > 0.15)
    assert ys.max() - ys.min() < 21 and xs.max() - xs.min() < 21  # fits the 20x20 box
    cy, cx = _centre_of_mass(out)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # centred by mass
    similarity = float(out.ravel() @ row / (np.linalg.norm(out) * np.linalg.norm(row)))
    assert similarity > 0.6, similarity


def test_photos_classify_like_the_originals(gw: httpx.Client, gw_url: str, digits) -> None:
    rows, _ = digits
    json_labels = gw.post(f"{gw_url}/v1/predict", json={"instances": rows[:20].tolist()}).json()["labels"]
    photo_labels = []
    for row in rows[:20]:
        r = gw.post(f"{gw_url}/v1/predict/image", files={"file": ("scan.jpg", _photo_of(row), "image/jpeg")})
        assert r.status_code == 200, r.text
        photo_labels.append(r.json()["labels"][0])
    agreement = float(np.mean(np.asarray(photo_labels) == np.asarray(json_labels)))
    assert agreement >= 0.8, (photo_labels, json_labels)


def test_white_on_transparent_strokes_are_kept(digits) -> None:
    """A canvas drawing: white strokes, transparent background."""
    row = digits[0][2]
    strokes = Image.fromarray(np.round(row.reshape(28, 28) * 255).astype(np.uint8)).resize((200, 200))
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    rgba.putalpha(strokes)
    white = Image.new("RGBA", (200, 200), (255, 255, 255, 255))
    white.putalpha(strokes)
    buf = io.BytesIO()
    white.save(buf, format="PNG")
    out = decode_image(buf.getvalue(), max_pixels=10**6)
    assert out.max() > 0.9 and np.median(out) < 0.05
