"""Evaluation sets beyond MNIST's own test split, for what users upload to ``/v1/predict/image``.

- ``printed``: machine-printed digits as on forms, photographed or scanned: 19 typefaces (DejaVu
  Sans/Serif/Mono, STIX, Computer Modern; regular, bold, italic, all shipped inside matplotlib's
  wheel, so the set is the same wherever the pinned requirements are installed) at several sizes,
  offsets and rotations, on uneven paper with blur, sensor noise and JPEG compression.
- ``drawn``: digits drawn on the drawing page's canvas (280x280, round pen, black on white): two
  stroke templates per digit, each drawn with random size, position, slant, rotation, jitter and
  pen width.
- ``handwritten``: the held-out MNIST digits themselves (real handwriting) photographed: enlarged,
  dark on light paper, off centre, blurred and noisy.

Both are for evaluation only: never trained on. Each image goes through the gateway's own
preprocessing (``mnist_serving.image.decode_image``), exactly as an upload does.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_serving.image import decode_image
from mnist_serving.spec import INPUT_DIM

SEED = 20261123
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
)
FONT_SIZES = (18, 28, 40, 64, 96)  # pixels: small scans to close-up photos
PRINTED_VARIANTS = 3  # renderings per font and digit
DRAWN_PER_DIGIT = 30
MAX_PIXELS = 16_000_000  # the gateway's default limit


@dataclass(frozen=True)
class EvalSet:
    name: str
    images: list[bytes]  # encoded files, as a user would upload them
    labels: np.ndarray
    groups: list[str]  # font or stroke template, for per-group accuracy

    @cached_property
    def rows(self) -> np.ndarray:
        """Every image through the gateway's preprocessing: float32 [n, 784]."""
        return np.stack([decode_image(img, MAX_PIXELS).reshape(INPUT_DIM) for img in self.images])


def encode(gray: np.ndarray, rng: np.random.Generator) -> bytes:
    """A grayscale array as a user's file: JPEG (phone photos) or PNG, half each."""
    img = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), mode="L")
    buf = io.BytesIO()
    if rng.random() < 0.5:  # phone photos arrive as JPEG
        img.save(buf, format="JPEG", quality=int(rng.integers(60, 92)))
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def _printed_one(digit: int, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> bytes:
    return printed_text(str(digit), font, rng)


def printed_text(text: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> bytes:
    """``text`` printed in ``font`` and photographed or scanned: paper, ink, offsets, a small
    rotation, blur, uneven light, sensor noise, PNG or JPEG (training/nondigits.py prints letters)."""
    paper, ink = float(rng.uniform(185, 255)), float(rng.uniform(0, 90))
    left, top, right, bottom = font.getbbox(text)
    w, h = right - left, bottom - top
    cw, ch = int(w * rng.uniform(1.4, 3.2)) + 8, int(h * rng.uniform(1.3, 2.6)) + 8
    x = rng.uniform(4, max(5, cw - w - 4)) - left
    y = rng.uniform(4, max(5, ch - h - 4)) - top
    img = Image.new("L", (cw, ch), 255)
    ImageDraw.Draw(img).text((x, y), text, font=font, fill=0)
    img = img.rotate(float(rng.uniform(-7, 7)), resample=Image.Resampling.BICUBIC, fillcolor=255)
    blur = float(rng.uniform(0, 1.3)) * font.size / 40
    if blur > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    coverage = np.asarray(img, dtype=np.float32) / 255.0  # 1 = paper, 0 = ink
    gray = ink + (paper - ink) * coverage
    light = np.linspace(1.0, rng.uniform(0.8, 1.0), cw)[None, :] * np.linspace(1.0, rng.uniform(0.85, 1.0), ch)[:, None]
    gray = gray * light + rng.normal(0, rng.uniform(0, 10), gray.shape)
    return encode(gray, rng)


@cache
def printed(seed: int = SEED) -> EvalSet:
    """``seed``: another seed gives a development set (the same fonts, other renderings) to tune on,
    so that the reported set is never used to make choices."""
    rng = np.random.default_rng(seed)
    images, labels, groups = [], [], []
    for font_file in FONTS:
        for digit in range(10):
            for _ in range(PRINTED_VARIANTS):
                font = ImageFont.truetype(str(FONT_DIR / font_file), int(rng.choice(FONT_SIZES)))
                images.append(_printed_one(digit, font, rng))
                labels.append(digit)
                groups.append(font_file.removesuffix(".ttf"))
    return EvalSet("printed", images, np.asarray(labels), groups)


# Strokes in a unit box (x right, y down), each a polyline smoothed before drawing; two ways to
# write each digit, as people do (closed or open 4, 7 with or without a bar, 1 with or without a flag).
Stroke = list[tuple[float, float]]
TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [
        [
            [
                (0.5, 0.04),
                (0.22, 0.2),
                (0.16, 0.5),
                (0.24, 0.82),
                (0.5, 0.96),
                (0.76, 0.82),
                (0.84, 0.5),
                (0.76, 0.18),
                (0.5, 0.04),
                (0.42, 0.08),
            ]
        ],
        [[(0.55, 0.05), (0.3, 0.12), (0.2, 0.45), (0.3, 0.88), (0.55, 0.95), (0.75, 0.7), (0.78, 0.3), (0.6, 0.06)]],
    ],
    1: [
        [[(0.52, 0.04), (0.48, 0.96)]],
        [[(0.32, 0.24), (0.56, 0.04), (0.54, 0.96)]],
    ],
    2: [
        [[(0.2, 0.28), (0.32, 0.1), (0.55, 0.04), (0.76, 0.14), (0.8, 0.34), (0.62, 0.58), (0.2, 0.95), (0.85, 0.95)]],
        [[(0.22, 0.22), (0.45, 0.05), (0.72, 0.1), (0.74, 0.36), (0.4, 0.7), (0.18, 0.94), (0.55, 0.9), (0.84, 0.92)]],
    ],
    3: [
        [
            [
                (0.2, 0.15),
                (0.45, 0.04),
                (0.72, 0.1),
                (0.75, 0.3),
                (0.48, 0.48),
                (0.78, 0.6),
                (0.8, 0.82),
                (0.55, 0.96),
                (0.2, 0.86),
            ]
        ],
        [[(0.2, 0.06), (0.78, 0.06), (0.45, 0.42), (0.72, 0.52), (0.8, 0.76), (0.55, 0.95), (0.22, 0.88)]],
    ],
    4: [
        [[(0.62, 0.04), (0.14, 0.66), (0.86, 0.66)], [(0.64, 0.3), (0.64, 0.96)]],
        [[(0.26, 0.04), (0.2, 0.55), (0.82, 0.55)], [(0.7, 0.08), (0.7, 0.96)]],
    ],
    5: [
        [[(0.78, 0.05), (0.3, 0.05), (0.25, 0.45), (0.52, 0.38), (0.77, 0.5), (0.8, 0.76), (0.56, 0.95), (0.2, 0.88)]],
        [
            [(0.3, 0.05), (0.26, 0.46), (0.55, 0.4), (0.78, 0.58), (0.72, 0.88), (0.45, 0.96), (0.2, 0.86)],
            [(0.3, 0.06), (0.8, 0.05)],
        ],
    ],
    6: [
        [
            [
                (0.72, 0.05),
                (0.42, 0.22),
                (0.25, 0.55),
                (0.3, 0.86),
                (0.52, 0.96),
                (0.74, 0.82),
                (0.72, 0.6),
                (0.5, 0.5),
                (0.28, 0.62),
            ]
        ],
        [[(0.62, 0.04), (0.3, 0.4), (0.24, 0.75), (0.45, 0.95), (0.7, 0.85), (0.7, 0.6), (0.45, 0.55), (0.27, 0.68)]],
    ],
    7: [
        [[(0.15, 0.08), (0.85, 0.08), (0.42, 0.96)]],
        [[(0.18, 0.1), (0.82, 0.06), (0.48, 0.96)], [(0.3, 0.52), (0.74, 0.5)]],
    ],
    8: [
        [
            [
                (0.5, 0.5),
                (0.26, 0.3),
                (0.3, 0.1),
                (0.5, 0.04),
                (0.7, 0.12),
                (0.72, 0.3),
                (0.5, 0.5),
                (0.24, 0.7),
                (0.3, 0.9),
                (0.5, 0.96),
                (0.72, 0.88),
                (0.76, 0.7),
                (0.5, 0.5),
            ]
        ],
        [
            [
                (0.7, 0.12),
                (0.5, 0.04),
                (0.3, 0.12),
                (0.32, 0.34),
                (0.7, 0.62),
                (0.72, 0.88),
                (0.5, 0.96),
                (0.28, 0.86),
                (0.3, 0.62),
                (0.68, 0.34),
                (0.7, 0.12),
            ]
        ],
    ],
    9: [
        [
            [
                (0.74, 0.3),
                (0.6, 0.07),
                (0.38, 0.06),
                (0.24, 0.22),
                (0.3, 0.44),
                (0.52, 0.48),
                (0.74, 0.32),
                (0.72, 0.6),
                (0.62, 0.96),
            ]
        ],
        [[(0.72, 0.2), (0.5, 0.05), (0.28, 0.15), (0.3, 0.38), (0.55, 0.42), (0.72, 0.2), (0.72, 0.96)]],
    ],
}
CANVAS = 280  # the drawing page's canvas
PAGE_PEN = 18  # its pen width


def smooth(points: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Chaikin's corner cutting: a polyline into a smooth curve through roughly the same places."""
    for _ in range(rounds):
        if len(points) < 3:
            break
        a, b = points[:-1], points[1:]
        cut = np.empty((2 * len(a), 2))
        cut[0::2], cut[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        points = np.vstack([points[:1], cut, points[-1:]])
    return points


def drawn_strokes(strokes: list[Stroke], rng: np.random.Generator, rounds: int = 3) -> bytes:
    """Strokes (unit box) drawn on the page's canvas with random size, place, slant, rotation, jitter,
    pen; ``rounds`` of smoothing (0 keeps corners: a square stays a square)."""
    scale = 2  # draw at twice the size, then downsample: the canvas antialiases its strokes
    size = float(rng.uniform(0.45, 0.85)) * CANVAS
    aspect = float(rng.uniform(0.7, 1.05))
    slant, angle = float(rng.uniform(-0.25, 0.25)), np.deg2rad(rng.uniform(-10, 10))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    margin = (CANVAS - size) / 2
    centre = CANVAS / 2 + rng.uniform(-margin, margin, 2) * 0.8
    pen = float(rng.uniform(0.6, 1.4)) * PAGE_PEN * scale
    img = Image.new("L", (CANVAS * scale, CANVAS * scale), 255)
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        pts = np.asarray(stroke) + rng.normal(0, 0.015, (len(stroke), 2))
        pts = smooth(pts, rounds) - 0.5
        pts[:, 0] = (pts[:, 0] - slant * pts[:, 1]) * aspect
        xy = (pts @ rot.T * size + centre) * scale
        flat = [(float(x), float(y)) for x, y in xy]
        draw.line(flat, fill=0, width=int(pen), joint="curve")
        for x, y in (flat[0], flat[-1]):  # round caps, as the page's lineCap
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=0)
    img = img.resize((CANVAS, CANVAS), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # the page uploads a PNG of its canvas
    return buf.getvalue()


@cache
def drawn(seed: int = SEED + 1) -> EvalSet:
    rng = np.random.default_rng(seed)
    images, labels, groups = [], [], []
    for digit, templates in TEMPLATES.items():
        for i in range(DRAWN_PER_DIGIT):
            t = i % len(templates)
            images.append(drawn_strokes(templates[t], rng))
            labels.append(digit)
            groups.append(f"{digit}{'ab'[t]}")
    return EvalSet("drawn", images, np.asarray(labels), groups)


def handwritten(x_test: np.ndarray, y_test: np.ndarray, seed: int = SEED + 2) -> EvalSet:
    """Held-out MNIST digits as photos of handwriting on paper (never trained on: the test split)."""
    rng = np.random.default_rng(seed)
    images = []
    for row in x_test:
        side = int(rng.integers(60, 200))
        digit = Image.fromarray(np.round(row.reshape(28, 28) * 255).astype(np.uint8)).resize(
            (side, side), Image.Resampling.BICUBIC
        )
        digit = digit.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0)) * side / 150))
        ink = np.asarray(digit, dtype=np.float32) / 255.0
        w, h = int(side * rng.uniform(1.2, 2.5)), int(side * rng.uniform(1.1, 2.0))
        paper = np.full((h, w), float(rng.uniform(185, 250)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        paper[top : top + side, left : left + side] -= ink * float(rng.uniform(120, 200))
        light = np.linspace(1.0, rng.uniform(0.85, 1.0), w)[None, :]
        images.append(encode(paper * light + rng.normal(0, rng.uniform(0, 8), paper.shape), rng))
    return EvalSet("handwritten", images, np.asarray(y_test), ["mnist-test"] * len(images))


def accuracy(predict: Callable[[np.ndarray], np.ndarray], evalset: EvalSet) -> float:
    return float((predict(evalset.rows).argmax(axis=1) == evalset.labels).mean())
