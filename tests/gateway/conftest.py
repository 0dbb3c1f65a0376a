from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_serving.ports import local_url
from serving.native.stack import ServingStack


@pytest.fixture(scope="session")
def gw_url(serving_stack: ServingStack) -> str:
    return local_url(serving_stack.ports.gateway)


@pytest.fixture(scope="session")
def gw() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def digits(test_split) -> tuple[np.ndarray, np.ndarray]:
    """The first 40 real MNIST test digits and their labels."""
    return test_split.x_test[:40], test_split.y_test[:40]


def png_bytes(row: np.ndarray) -> bytes:
    img = Image.fromarray(np.round(row.reshape(28, 28) * 255).astype(np.uint8), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def digit_pngs(digits, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real MNIST test digits saved as PNG files."""
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, row in enumerate(digits[0]):
        p = folder / f"digit_{i}.png"
        p.write_bytes(png_bytes(row))
        paths.append(p)
    return paths
