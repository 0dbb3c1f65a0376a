"""Uploaded image to one MNIST-style row.

MNIST digits are white on black, fit in a 20x20 box and are centred by centre of mass in 28x28.
A photo or scan of a dark digit on light paper gets the same treatment: grayscale (alpha
composited), inverted when the background is light, background level removed, cropped to the
digit, scaled into 20x20 keeping aspect, centred by mass. An image that is already 28x28 is taken
as it is (inverted if light): it is in the model's format, and resampling would only blur it.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from gateway.app.core.errors import APIError, too_large, unprocessable, unsupported
from mnist_serving.spec import IMAGE_SIDE

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"})
DIGIT_BOX = 20
INK_THRESHOLD = 0.15  # share of the brightest value that counts as ink when cropping


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes of an image file to a float32 [28, 28] array in [0, 1], white digit on black."""
    if not data:
        raise unprocessable("empty_file", "the uploaded file is empty")
    img = _open(data, max_pixels)
    gray = _grayscale(img)
    return to_mnist(gray)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise unsupported(
                    "unsupported_image_type",
                    f"{img.format} images are not accepted; use {', '.join(sorted(ALLOWED_FORMATS))}",
                )
            w, h = img.size
            if w * h > max_pixels:
                raise too_large("image_too_large", f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
            img.load()
    except APIError:
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
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if float(np.median(border)) > 127:
        gray = 255.0 - gray
        border = 255.0 - border
    if gray.shape == (IMAGE_SIDE, IMAGE_SIDE):
        return (gray / 255.0).astype(np.float32)
    ink = np.clip(gray - float(np.median(border)), 0, None)
    peak = float(ink.max())
    if peak < 25:  # nothing stands out from the background
        raise unprocessable("blank_image", "no digit found: the image is blank or has no contrast")
    ink = ink * (255.0 / peak)
    ys, xs = np.nonzero(ink > INK_THRESHOLD * 255)
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    canvas = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    top, left = (IMAGE_SIDE - size[1]) // 2, (IMAGE_SIDE - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = np.clip(small, 0, 255)
    return (_centre_by_mass(canvas) / 255.0).astype(np.float32)


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
