import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from training.data import IDX_FILES, DataError, load_split


def test_default_split_is_stratified_and_scaled(test_split) -> None:
    assert test_split.x_train.shape == (4000, 784) and test_split.x_test.shape == (1000, 784)
    assert test_split.x_train.dtype == np.float32
    assert test_split.x_train.min() >= 0.0 and test_split.x_train.max() <= 1.0
    assert np.bincount(test_split.y_test).tolist() == [100] * 10  # stratified


def test_split_is_reproducible() -> None:
    a, b = load_split(seed=7), load_split(seed=7)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, load_split(seed=8).y_test)


def _fake_mnist(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def test_npz_source_keeps_official_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (xt, yt), (xv, yv) = _fake_mnist(60, rng), _fake_mnist(10, rng)
    np.savez(tmp_path / "mnist.npz", x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    split = load_split(tmp_path / "mnist.npz")
    assert split.x_train.shape == (60, 784) and split.x_test.shape == (10, 784)
    np.testing.assert_allclose(split.x_test[3], xv[3].reshape(-1) / 255.0, rtol=1e-6)
    assert "official" in split.description


def _write_idx(path: Path, arr: np.ndarray, *, images: bool) -> None:
    header = struct.pack(">IIII", 2051, len(arr), 28, 28) if images else struct.pack(">II", 2049, len(arr))
    path.write_bytes(gzip.compress(header + arr.tobytes()))


def test_idx_source(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = dict(zip(("x_train", "y_train"), _fake_mnist(20, rng), strict=True)) | dict(
        zip(("x_test", "y_test"), _fake_mnist(5, rng), strict=True)
    )
    for key, name in IDX_FILES.items():
        _write_idx(tmp_path / name, arrays[key], images=key.startswith("x"))
    split = load_split(tmp_path)
    assert split.x_train.shape == (20, 784)
    np.testing.assert_array_equal(split.y_test, arrays["y_test"])


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.npz", "not found"),
        (lambda d: (d / "bad.npz").write_bytes(b"not a zip") and d / "bad.npz", "not a readable .npz"),
        (lambda d: d, "lacks train-images-idx3-ubyte.gz"),
    ],
    ids=["missing", "malformed-npz", "empty-idx-folder"],
)
def test_bad_data_is_a_clear_error(tmp_path: Path, setup, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_split(setup(tmp_path))


def test_idx_with_wrong_magic(tmp_path: Path) -> None:
    for name in IDX_FILES.values():
        (tmp_path / name).write_bytes(gzip.compress(b"\0" * 16))
    with pytest.raises(DataError, match="no IDX image header"):
        load_split(tmp_path)


def test_cli_bad_path_exits_nonzero_with_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "training.train", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "MNIST data not found" in proc.stderr
