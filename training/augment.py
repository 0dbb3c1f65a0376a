"""Training-time augmentation of MNIST digits, the same arrays for both frameworks (seeded).

What an uploaded digit differs from MNIST's handwriting by: slant and rotation, size and aspect,
position, stroke thickness (bold print, a thick or angled pen) and typographic terminals (the foot
of a printed 1 or 4). Each training digit gets ``copies`` randomly transformed copies beside the
original; no printed digit is ever trained on. Half of them are then normalised the way the
gateway normalises an upload (fit a 20x20 box keeping aspect, centre by mass), so the model also
sees what the image route feeds it; the rest stay shifted and scaled, for raw JSON rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mnist_serving.spec import IMAGE_SIDE, INPUT_DIM

BOX = 20  # MNIST's digit box inside 28x28
_PENS = ((2, 2), (2, 1), (1, 2))  # structuring elements for thicker/thinner strokes


@dataclass(frozen=True)
class Augmentation:
    copies: int = 8  # transformed copies per training digit; 0 turns augmentation off
    max_rotation_deg: float = 12.0
    scale: tuple[float, float] = (0.7, 1.1)
    max_aspect: float = 0.3  # x and y scale differ by up to this much: printed digits run wider
    max_shear: float = 0.3  # slant, as italic print and hurried handwriting
    max_shift_px: float = 2.5
    thicker: float = 0.2  # share of copies whose strokes are dilated by one pixel (round or angled pen)
    thinner: float = 0.1  # ... or eroded (kept only where enough ink survives)
    renormalised: float = 0.5  # share of copies put back into MNIST's 20x20 box, centred by mass
    serifs: float = 0.5  # share of copies given a short bar across the lowest (or highest) stroke end

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def augment(x: np.ndarray, y: np.ndarray, aug: Augmentation, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The originals followed by ``aug.copies`` transformed copies of each, shuffled together."""
    if aug.copies <= 0:
        return x, y
    rng = np.random.default_rng(seed)
    images = x.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    out = [x]
    for _ in range(aug.copies):
        out.append(np.stack([_one(img, aug, rng) for img in images]).reshape(-1, INPUT_DIM))
    xs = np.concatenate(out).astype(np.float32)
    ys = np.tile(y, aug.copies + 1)
    order = rng.permutation(len(xs))
    return xs[order], ys[order]


def _one(img: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    angle = np.deg2rad(rng.uniform(-aug.max_rotation_deg, aug.max_rotation_deg))
    s = rng.uniform(*aug.scale)
    a = rng.uniform(-aug.max_aspect, aug.max_aspect)
    shear = rng.uniform(-aug.max_shear, aug.max_shear)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = rot @ np.array([[s * (1 + a), 0.0], [0.0, s * (1 - a)]]) @ np.array([[1.0, 0.0], [shear, 1.0]])
    inverse = np.linalg.inv(forward)  # affine_transform maps output coordinates to input ones
    centre = np.array([IMAGE_SIDE / 2 - 0.5] * 2)
    shift = rng.uniform(-aug.max_shift_px, aug.max_shift_px, 2)
    offset = centre - inverse @ (centre + shift)
    out = ndimage.affine_transform(img, inverse, offset=offset, order=1, mode="constant", cval=0.0)
    if rng.random() < aug.serifs:
        out = _serif(out, rng)
    roll = rng.random()
    pen = _PENS[int(rng.integers(len(_PENS)))]  # round, or flat at an angle: thick and thin strokes
    if roll < aug.thicker:
        out = ndimage.grey_dilation(out, size=pen)
    elif roll < aug.thicker + aug.thinner:
        thin = ndimage.grey_erosion(out, size=pen)
        if thin.sum() > 0.5 * out.sum():
            out = thin
    if rng.random() < aug.renormalised:
        out = mnist_box(out)
    return np.clip(out, 0.0, 1.0)


def mnist_box(img: np.ndarray) -> np.ndarray:
    """MNIST's own normalisation: the ink's bounding box scaled into 20x20 keeping aspect, then
    centred by centre of mass in 28x28 (what the gateway does to an upload)."""
    ys, xs = np.nonzero(img > 0.05)
    if len(ys) == 0:
        return img
    crop = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    zoom = BOX / max(crop.shape)
    small = np.clip(ndimage.zoom(crop, zoom, order=1), 0.0, 1.0)
    canvas = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    h, w = small.shape[0], small.shape[1]
    top, left = (IMAGE_SIDE - h) // 2, (IMAGE_SIDE - w) // 2
    canvas[top : top + h, left : left + w] = small[: IMAGE_SIDE - top, : IMAGE_SIDE - left]
    cy, cx = ndimage.center_of_mass(canvas)
    return ndimage.shift(canvas, (IMAGE_SIDE / 2 - 0.5 - cy, IMAGE_SIDE / 2 - 0.5 - cx), order=1, mode="constant")


def _serif(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A typographic terminal: a short horizontal bar centred on the ink of the lowest (or, less
    often, the highest) ink row, as serif and many sans typefaces end their strokes."""
    rows = np.nonzero((img > 0.5).any(axis=1))[0]
    if len(rows) == 0:
        return img
    row = int(rows[-1] if rng.random() < 0.75 else rows[0])
    xs = np.nonzero(img[row] > 0.5)[0]
    centre = float(xs.mean())
    half = rng.uniform(1.5, 4.5)
    left, right = max(0, round(centre - half)), min(IMAGE_SIDE, round(centre + half) + 1)
    thick = 1 if rng.random() < 0.5 else 2
    top = row - thick + 1 if row == rows[-1] else row
    out = img.copy()
    out[max(0, top) : top + thick, left:right] = np.maximum(
        out[max(0, top) : top + thick, left:right], rng.uniform(0.7, 1.0)
    )
    return out
