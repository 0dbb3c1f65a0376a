"""The full MNIST (60k/10k) for users with internet access: ``make train TRAIN_ARGS=--download``.

It fetches the standard ``mnist.npz`` (the file ``keras.datasets.mnist`` uses), checks its sha256,
and caches it, so later runs train offline. ``MNIST_URL`` and ``MNIST_SHA256`` point at a mirror;
``MNIST_CACHE_DIR`` moves the cache (default ``~/.cache/mnist-serving``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from training.data import DataError

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # keras' file_hash
DEFAULT_CACHE = Path("~/.cache/mnist-serving")
TIMEOUT_S = 60.0
CHUNK = 1 << 16


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str | None = None, sha256: str | None = None, cache_dir: Path | None = None) -> Path:
    """The verified file in the cache, downloading it only when it is missing or corrupt."""
    url = url or os.environ.get("MNIST_URL", MNIST_URL)
    sha256 = (sha256 or os.environ.get("MNIST_SHA256", MNIST_SHA256)).lower()
    cache = (cache_dir or Path(os.environ.get("MNIST_CACHE_DIR", DEFAULT_CACHE))).expanduser()
    target = cache / (Path(urlparse(url).path).name or "mnist.npz")
    if target.is_file():
        if sha256_file(target) == sha256:
            print(f"data: using cached {target}", flush=True)
            return target
        print(f"data: cached {target} fails its checksum; downloading again", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        _download(url, part)
        got = sha256_file(part)
        if got != sha256:
            raise DataError(f"{url}: sha256 {got} does not match the expected {sha256}; the file was not kept")
        part.replace(target)  # atomic: a reader never sees half a file
    finally:
        part.unlink(missing_ok=True)
    return target


def _download(url: str, out: Path) -> None:
    if urlparse(url).scheme not in ("http", "https"):
        raise DataError(f"{url}: only http and https downloads are supported")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r, out.open("wb") as f:
            total = int(r.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            while block := r.read(CHUNK):
                f.write(block)
                done += len(block)
                pct = done * 100 // total if total else -1
                if pct // 10 != shown // 10:
                    shown = pct
                    size = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f}" if total else "")
                    print(f"data: downloading {url}: {size} MB", file=sys.stderr, flush=True)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(f"cannot download {url}: {exc}") from exc
    if not out.stat().st_size:
        raise DataError(f"{url} sent an empty file")
