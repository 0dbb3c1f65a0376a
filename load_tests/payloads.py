"""Request bodies made of real MNIST test digits (200 of the held-out split, committed in data/)."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import orjson
from PIL import Image

DATA = Path(__file__).resolve().parent / "data" / "mnist_test_sample.npz"


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DATA) as npz:
        return npz["x"].astype(np.float32) / 255.0, npz["y"].astype(np.int64)


@cache
def json_bodies() -> list[bytes]:
    """One ``{"instances": [row]}`` body per digit."""
    rows, _ = digits()
    return [orjson.dumps({"instances": [row.tolist()]}) for row in rows]


@cache
def png_files() -> list[bytes]:
    rows, _ = digits()
    out = []
    for row in rows:
        buf = io.BytesIO()
        Image.fromarray(np.round(row.reshape(28, 28) * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out
