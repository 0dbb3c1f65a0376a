"""Uploaded image to one MNIST-style row.

MNIST digits are white on black, fit in a 20x20 box and are centred by centre of mass in 28x28.
A photo or scan of a dark digit on light paper gets the same treatment, made robust to what
phones and scanners add:
- grayscale (alpha composited), inverted when the paper is light;
- uneven lighting: the paper is modelled as a plane fitted to the border and subtracted, then a
  noise floor (three sigmas of the border's residual) is taken off;
- the digit's box comes from a lightly smoothed ink map, so sensor specks do not widen it;
- ink scaled so the stroke cores saturate, as MNIST's do; cropped, scaled into a DIGIT_BOX square
  keeping aspect, centred by mass in 28x28.
An image that is already 28x28 is taken as it is (inverted if light): it is in the model's
format, and resampling would only blur it. Very large photos are reduced first (WORK_SIDE).

The gateway (uploads) and training (the evaluation sets) both use it. Problems raise ``ImageError``,
which says what kind of problem it is, not an HTTP status: the gateway maps the kind to one.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from mnist_serving.spec import IMAGE_SIDE

# What was wrong: the file cannot be read as an accepted image ("unsupported"), it is too big
# ("too_large"), or it is an image but holds no digit to read ("unprocessable").
Problem = Literal["unsupported", "too_large", "unprocessable"]


class ImageError(ValueError):
    def __init__(self, problem: Problem, type_: str, message: str):
        super().__init__(message)
        self.problem, self.type, self.message = problem, type_, message


def unprocessable(type_: str, message: str) -> ImageError:
    return ImageError("unprocessable", type_, message)


def too_large(type_: str, message: str) -> ImageError:
    return ImageError("too_large", type_, message)


def unsupported(type_: str, message: str) -> ImageError:
    return ImageError("unsupported", type_, message)


ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"})
# MNIST's digits fill a 20x20 box; uploads are fit into a smaller one. Measured on development
# sets of printed and drawn digits (training/evalsets.py with other seeds than the reported sets),
# the scale-augmented model reads them best at 16 (printed 0.885 vs 0.832 at 20, drawn 0.977 vs 0.960).
DIGIT_BOX = 16
WORK_SIDE = 640  # larger images are reduced to this first: ample for a 20-pixel box, and fast
BORDER = 0.04  # share of each side that is taken as paper when fitting the background
NOISE_SIGMAS = 3.0  # ink below this many sigmas of the paper's own noise is background
CROP_THRESHOLD = 0.3  # share of the (smoothed) peak that counts as the digit when cropping
SATURATION = 0.75  # ink at this share of the peak and above is full white, like MNIST's stroke cores
MIN_CONTRAST = 25.0  # gray levels: a peak below this is no digit


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes of an image file to a float32 [28, 28] array in [0, 1], white digit on black."""
    if not data:
        raise unprocessable("empty_file", "the uploaded file is empty")
    img = _open(data, max_pixels)
    gray = _grayscale(img)
    return to_mnist(gray)


# Formats people upload that are not accepted, told apart by their first bytes without running a
# parser for them (only the accepted formats' parsers ever see an upload).
_OTHER_FORMATS = (
    (b"\x00\x00\x01\x00", "ICO"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"<?xml", "SVG/XML"),
    (b"<svg", "SVG"),
)


def _other_format(data: bytes) -> str | None:
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIC/AVIF"
    return next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    other = _other_format(data)
    if other:
        raise unsupported(
            "unsupported_image_type", f"{other} images are not accepted; use {', '.join(sorted(ALLOWED_FORMATS))}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))  # no other parser runs
            if img.format not in ALLOWED_FORMATS:
                raise unsupported(
                    "unsupported_image_type",
                    f"{img.format} images are not accepted; use {', '.join(sorted(ALLOWED_FORMATS))}",
                )
            w, h = img.size
            if w * h > max_pixels:
                raise too_large("image_too_large", f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_large("decompression_bomb", f"image rejected as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's 'cannot identify image file' and friends
        raise unsupported("not_an_image", "the uploaded file is not an image Pillow can read") from exc
    return ImageOps.exif_transpose(img) or img


def _grayscale(img: Image.Image) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        lum = np.asarray(rgba.convert("L"), dtype=np.float32)
        opaque = alpha > 0.5
        # Strokes on a transparent canvas: put them on the background that contrasts with them.
        ink_is_light = opaque.any() and float(lum[opaque].mean()) > 127
        background = 0.0 if ink_is_light else 255.0
        return lum * alpha + background * (1.0 - alpha)
    return np.asarray(img.convert("L"), dtype=np.float32)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    border = _border(gray)
    light_paper = float(np.median(border)) > 127
    if float(gray.max() - gray.min()) < MIN_CONTRAST:  # all one shade: black, white or gray
        raise unprocessable("blank_image", "no digit found: the image is blank (all one shade); send a digit")
    if gray.shape == (IMAGE_SIDE, IMAGE_SIDE):
        digit = 255.0 - gray if light_paper else gray
        return (digit / 255.0).astype(np.float32)
    gray = _reduce(gray)
    ink = _ink(255.0 - gray if light_paper else gray)
    side = max(ink.shape)
    # Pillow blurs 8-bit images only; the smoothed map decides the box, not the pixel values.
    eight_bit = Image.fromarray(np.clip(ink, 0, 255).astype(np.uint8), mode="L")
    smooth = np.asarray(eight_bit.filter(ImageFilter.GaussianBlur(max(1.0, side / 200))), dtype=np.float32)
    peak = float(smooth.max())
    if peak < MIN_CONTRAST:  # it has contrast, but nothing stands out of the paper's own texture
        raise unprocessable(
            "no_digit",
            "no digit found: nothing stands out from the background (the image looks like noise, a texture or a "
            "faint drawing); send one dark digit on light paper, or a light digit on dark, filling much of the image",
        )
    ys, xs = np.nonzero(smooth > CROP_THRESHOLD * peak)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    crop = np.clip(crop * (255.0 / (SATURATION * float(crop.max()))), 0, 255)
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    canvas = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    top, left = (IMAGE_SIDE - size[1]) // 2, (IMAGE_SIDE - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = np.clip(small, 0, 255)
    return (_centre_by_mass(canvas) / 255.0).astype(np.float32)


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _reduce(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    if max(h, w) <= WORK_SIDE:
        return gray
    scale = WORK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(gray.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))


def _ink(light_ink: np.ndarray) -> np.ndarray:
    """Ink above the paper (light ink on dark paper in, ink levels >= 0 out): a plane fitted to the
    border frame is the paper, so a lamp on one side does not count as ink."""
    h, w = light_ink.shape
    m = max(1, round(BORDER * min(h, w)))
    frame = np.ones((h, w), dtype=bool)
    frame[m : h - m, m : w - m] = False
    ys, xs = np.nonzero(frame)
    values = light_ink[frame]
    design = np.column_stack([xs / w, ys / h, np.ones(len(xs))])
    coef = np.linalg.lstsq(design, values, rcond=None)[0]
    residual = values - design @ coef
    keep = residual < np.percentile(residual, 90)  # ink touching the frame must not tilt the plane
    if keep.sum() >= 3:
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = values[keep] - design[keep] @ coef
    sigma = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))  # robust noise level
    yy, xx = np.mgrid[0:h, 0:w]
    paper = coef[0] * xx / w + coef[1] * yy / h + coef[2]
    return np.clip(light_ink - paper - NOISE_SIGMAS * sigma, 0, None).astype(np.float32)


def _centre_by_mass(canvas: np.ndarray) -> np.ndarray:
    total = float(canvas.sum())
    if total == 0:
        return canvas
    ys, xs = np.indices(canvas.shape)
    dy = round(IMAGE_SIDE / 2 - 0.5 - float((ys * canvas).sum()) / total)
    dx = round(IMAGE_SIDE / 2 - 0.5 - float((xs * canvas).sum()) / total)
    out = np.zeros_like(canvas)
    src = canvas[max(0, -dy) : IMAGE_SIDE - max(0, dy), max(0, -dx) : IMAGE_SIDE - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out
