"""Images that are not digits, for measuring when an answer should be flagged uncertain.

What a user may send instead of a digit: letters and a word printed in the typefaces of the
printed-digit set (training/evalsets.py's font machinery: paper, ink, blur, uneven light, noise,
JPEG), noise, geometric shapes and a cat silhouette drawn on the page's canvas or printed, and
blank-ish textures (gradients, paper grain, stripes). Every image goes through the gateway's own
preprocessing (``mnist_serving.image.decode_image``), as an upload does; the ones it refuses
(``ImageError``: blank, no contrast) are counted apart, since the gateway answers them with a 422
and no prediction. ``rows`` adds what arrives as JSON rows without any preprocessing: random pixels.

Deterministic per seed: the default seed gives the reported sets, other seeds development sets
(training/uncertainty.py chooses the threshold on those).
"""

from __future__ import annotations

import io
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

from mnist_serving.image import ImageError, decode_image
from mnist_serving.spec import INPUT_DIM
from training.evalsets import FONT_DIR, FONT_SIZES, FONTS, MAX_PIXELS, Stroke, drawn_strokes, encode, printed_text

SEED = 20261206
LETTERS = string.ascii_uppercase + string.ascii_lowercase
LETTER_RENDERINGS = 6  # per letter, each in a random typeface and size
WORDS = ("hello",)
WORD_RENDERINGS = 2  # per typeface
PER_KIND = 6  # renderings of each noise kind, shape, cat and texture


@dataclass(frozen=True)
class NonDigits:
    """One category of non-digit inputs: uploaded image files, or JSON rows (``images`` empty)."""

    name: str
    description: str
    images: list[bytes]
    groups: list[str]  # the kind of each input (which letter, which shape...)
    raw_rows: np.ndarray | None = None  # JSON rows: the model input as sent, no preprocessing

    @cached_property
    def decoded(self) -> tuple[np.ndarray, list[str], list[str]]:
        """(model rows of the accepted inputs, their groups, the ImageError type of each refused one)."""
        if self.raw_rows is not None:
            return self.raw_rows, list(self.groups), []
        rows, groups, refused = [], [], []
        for img, group in zip(self.images, self.groups, strict=True):
            try:
                rows.append(decode_image(img, MAX_PIXELS).reshape(INPUT_DIM))
                groups.append(group)
            except ImageError as exc:
                refused.append(exc.type)
        out = np.stack(rows) if rows else np.zeros((0, INPUT_DIM), np.float32)
        return out.astype(np.float32), groups, refused

    @property
    def rows(self) -> np.ndarray:
        return self.decoded[0]

    @property
    def refused(self) -> Counter[str]:
        return Counter(self.decoded[2])

    def __len__(self) -> int:
        return len(self.groups)


def _font(rng: np.random.Generator, file: str | None = None) -> ImageFont.FreeTypeFont:
    name = file or str(rng.choice(FONTS))
    return ImageFont.truetype(str(FONT_DIR / name), int(rng.choice(FONT_SIZES)))


def letters(rng: np.random.Generator) -> NonDigits:
    images, groups = [], []
    for letter in LETTERS:
        for _ in range(LETTER_RENDERINGS):
            images.append(printed_text(letter, _font(rng), rng))
            groups.append(letter)
    return NonDigits(
        "letters", f"A-Z, a-z printed, {LETTER_RENDERINGS} typefaces/sizes each, photographed", images, groups
    )


def words(rng: np.random.Generator) -> NonDigits:
    images, groups = [], []
    for word in WORDS:
        for font_file in FONTS:
            for _ in range(WORD_RENDERINGS):
                images.append(printed_text(word, _font(rng, font_file), rng))
                groups.append(word)
    return NonDigits("word", f"{', '.join(repr(w) for w in WORDS)} printed in {len(FONTS)} typefaces", images, groups)


def _noise_one(kind: str, rng: np.random.Generator) -> bytes:
    h, w = (28, 28) if rng.random() < 0.25 else (int(rng.integers(40, 320)), int(rng.integers(40, 320)))
    if kind == "uniform":
        gray = rng.uniform(0, 255, (h, w))
    elif kind == "gaussian":
        gray = rng.normal(rng.uniform(60, 200), rng.uniform(20, 70), (h, w))
    elif kind == "salt-and-pepper":
        gray = np.full((h, w), float(rng.uniform(150, 255)))
        specks = rng.random((h, w)) < rng.uniform(0.02, 0.2)
        gray[specks] = rng.uniform(0, 60)
    else:  # "blobs": smoothed noise, the look of a stain or a cloud
        gray = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), max(h, w) / rng.uniform(8, 20))
        gray = 128 + gray / (np.abs(gray).max() + 1e-9) * rng.uniform(60, 127)
    return encode(gray, rng)


def noise(rng: np.random.Generator) -> NonDigits:
    kinds = ("uniform", "gaussian", "salt-and-pepper", "blobs")
    groups = [k for k in kinds for _ in range(PER_KIND * 2)]
    return NonDigits(
        "noise", "uniform, Gaussian, salt-and-pepper, smooth blobs", [_noise_one(k, rng) for k in groups], groups
    )


def _polygon(n: int, r: float = 0.45, phase: float = -np.pi / 2) -> Stroke:
    a = phase + np.arange(n + 1) * 2 * np.pi / n
    return [(0.5 + r * float(np.cos(t)), 0.5 + r * float(np.sin(t))) for t in a]


def _star(points: int = 5) -> Stroke:
    a = -np.pi / 2 + np.arange(2 * points + 1) * np.pi / points
    r = np.where(np.arange(2 * points + 1) % 2 == 0, 0.47, 0.19)
    return [(0.5 + float(ri * np.cos(t)), 0.5 + float(ri * np.sin(t))) for ri, t in zip(r, a, strict=True)]


def _spiral() -> Stroke:
    t = np.linspace(0, 5 * np.pi, 40)
    r = 0.03 + 0.42 * t / t[-1]
    return [(0.5 + float(ri * np.cos(ti)), 0.5 + float(ri * np.sin(ti))) for ri, ti in zip(r, t, strict=True)]


# Outlines drawn with the page's pen (a circle is left out: drawn, it *is* a zero).
SHAPES: dict[str, list[Stroke]] = {
    "square": [[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.1)]],
    "triangle": [[(0.5, 0.05), (0.95, 0.9), (0.05, 0.9), (0.5, 0.05)]],
    "star": [_star()],
    "hexagon": [_polygon(6)],
    "cross": [[(0.1, 0.1), (0.9, 0.9)], [(0.9, 0.1), (0.1, 0.9)]],
    "plus": [[(0.5, 0.05), (0.5, 0.95)], [(0.05, 0.5), (0.95, 0.5)]],
    "arrow": [[(0.05, 0.5), (0.95, 0.5)], [(0.65, 0.2), (0.95, 0.5), (0.65, 0.8)]],
    "heart": [
        [(0.5, 0.95), (0.1, 0.5), (0.1, 0.25), (0.3, 0.1), (0.5, 0.3), (0.7, 0.1), (0.9, 0.25), (0.9, 0.5), (0.5, 0.95)]
    ],
    "spiral": [_spiral()],
    "zigzag": [[(0.05, 0.2), (0.25, 0.8), (0.45, 0.2), (0.65, 0.8), (0.85, 0.2), (0.95, 0.5)]],
    "grid": [[(0.05, y), (0.95, y)] for y in (0.2, 0.5, 0.8)] + [[(x, 0.05), (x, 0.95)] for x in (0.2, 0.5, 0.8)],
}
ROUNDED = {"heart": 3, "spiral": 3}  # smoothed like handwriting; the others keep their corners
# Filled silhouettes, printed and photographed: shapes, and a cat (sitting, side on; a head with ears).
SILHOUETTES: dict[str, Stroke] = {
    "disc": _polygon(40),
    "filled square": [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)],
    "filled triangle": [(0.5, 0.05), (0.95, 0.9), (0.05, 0.9)],
    "filled star": _star(),
}
CATS: dict[str, Stroke] = {
    "cat sitting": [
        (0.30, 0.98), (0.28, 0.70), (0.33, 0.48), (0.30, 0.30), (0.27, 0.10), (0.36, 0.20), (0.44, 0.18),
        (0.52, 0.08), (0.54, 0.28), (0.50, 0.42), (0.62, 0.60), (0.68, 0.84), (0.80, 0.86), (0.92, 0.74),
        (0.97, 0.80), (0.86, 0.96), (0.66, 0.98),
    ],
    "cat head": [
        (0.15, 0.05), (0.38, 0.28), (0.62, 0.28), (0.85, 0.05), (0.90, 0.45), (0.82, 0.75), (0.62, 0.92),
        (0.38, 0.92), (0.18, 0.75), (0.10, 0.45),
    ],
}  # fmt: skip


def _silhouette_one(poly: Stroke, rng: np.random.Generator) -> bytes:
    """A filled dark shape on paper, photographed: the same paper, light and noise as printed digits."""
    side = int(rng.integers(60, 360))
    w, h = int(side * rng.uniform(1.1, 1.8)), int(side * rng.uniform(1.1, 1.6))
    img = Image.new("L", (w, h), 255)
    x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    flip = rng.random() < 0.5
    pts = [(x0 + side * ((1 - x) if flip else x), y0 + side * y) for x, y in poly]
    ImageDraw.Draw(img).polygon(pts, fill=0)
    img = img.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BICUBIC, fillcolor=255)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5)) * side / 150))
    paper, ink = float(rng.uniform(185, 255)), float(rng.uniform(0, 90))
    gray = ink + (paper - ink) * np.asarray(img, dtype=np.float32) / 255.0
    light = np.linspace(1.0, rng.uniform(0.8, 1.0), w)[None, :]
    return encode(gray * light + rng.normal(0, rng.uniform(0, 8), gray.shape), rng)


def shapes(rng: np.random.Generator) -> NonDigits:
    images, groups = [], []
    for name, strokes in SHAPES.items():
        for _ in range(PER_KIND):
            images.append(drawn_strokes(strokes, rng, rounds=ROUNDED.get(name, 0)))
            groups.append(name)
    for name, poly in SILHOUETTES.items():
        for _ in range(PER_KIND):
            images.append(_silhouette_one(poly, rng))
            groups.append(name)
    return NonDigits("shapes", "outlines drawn on the page's canvas, filled shapes photographed", images, groups)


def cats(rng: np.random.Generator) -> NonDigits:
    images, groups = [], []
    for name, poly in CATS.items():
        for _ in range(PER_KIND * 2):
            images.append(_silhouette_one(poly, rng))
            groups.append(f"{name} (filled)")
        for _ in range(PER_KIND):
            images.append(drawn_strokes([[*poly, poly[0]]], rng, rounds=1))
            groups.append(f"{name} (drawn)")
    return NonDigits("cat", "a sitting cat and a cat's head: filled and photographed, or drawn", images, groups)


def _texture_one(kind: str, rng: np.random.Generator) -> bytes:
    h, w = int(rng.integers(40, 400)), int(rng.integers(40, 400))
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = float(rng.uniform(120, 240))
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        gray = base + rng.uniform(20, 80) * (np.cos(angle) * xx + np.sin(angle) * yy)
    elif kind == "paper":
        grain = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), rng.uniform(0.5, 3))
        gray = base + grain / (grain.std() + 1e-9) * rng.uniform(2, 10)
    elif kind == "stripes":
        gray = base + rng.uniform(15, 60) * np.sin(2 * np.pi * rng.uniform(3, 15) * (xx if rng.random() < 0.5 else yy))
    elif kind == "checkerboard":
        n = int(rng.integers(2, 9))
        gray = base - rng.uniform(30, 120) * ((np.floor(xx * n) + np.floor(yy * n)) % 2)
    else:  # "plain": one shade
        gray = np.full((h, w), base)
    return encode(gray + rng.normal(0, rng.uniform(0, 3), gray.shape), rng)


def textures(rng: np.random.Generator) -> NonDigits:
    kinds = ("gradient", "paper", "stripes", "checkerboard", "plain")
    groups = [k for k in kinds for _ in range(PER_KIND)]
    return NonDigits(
        "textures",
        "gradients, paper grain, stripes, checkerboards, plain",
        [_texture_one(k, rng) for k in groups],
        groups,
    )


def rows(rng: np.random.Generator) -> NonDigits:
    """JSON rows that are not digits: uniform noise, sparse specks, and a smooth blob field."""
    n = PER_KIND * 4
    uniform = rng.uniform(0, 1, (n, INPUT_DIM))
    sparse = (rng.random((n, INPUT_DIM)) < rng.uniform(0.02, 0.2, (n, 1))).astype(np.float64)
    blobs = np.stack([ndimage.gaussian_filter(rng.normal(0, 1, (28, 28)), 2.5).ravel() for _ in range(n)])
    blobs = np.clip(blobs / np.abs(blobs).max(axis=1, keepdims=True), 0, 1)
    out = np.concatenate([uniform, sparse, blobs]).astype(np.float32)
    groups = ["uniform"] * n + ["sparse"] * n + ["blobs"] * n
    return NonDigits("json noise", "random 784-float rows sent as JSON (no preprocessing)", [], groups, out)


CATEGORIES: tuple[Callable[[np.random.Generator], NonDigits], ...] = (
    letters,
    words,
    noise,
    shapes,
    cats,
    textures,
    rows,
)


@cache
def all_sets(seed: int = SEED) -> tuple[NonDigits, ...]:
    """Every category, each from its own stream of ``seed`` (adding a category changes no other)."""
    return tuple(make(np.random.default_rng([seed, i])) for i, make in enumerate(CATEGORIES))


def preview(sets: tuple[NonDigits, ...], per_set: int = 12) -> list[tuple[str, list[np.ndarray]]]:
    """A few uploads of each image category as grayscale arrays (for the report's picture)."""
    out = []
    for s in sets:
        if not s.images:
            continue
        step = max(1, len(s.images) // per_set)
        picks = s.images[::step][:per_set]
        out.append((s.name, [np.asarray(Image.open(io.BytesIO(b)).convert("L")) for b in picks]))
    return out
