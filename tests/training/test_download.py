"""`--download`: the full MNIST from a URL, sha256-checked and cached, tried against a local HTTP
server (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_serving.ports import local_url
from tests.conftest import REPO
from training.data import DataError, load_split
from training.download import fetch


class _Server:
    def __init__(self, folder: Path):
        handler = type("H", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
        self.hits: list[str] = []
        outer = self

        class Counting(handler):  # type: ignore[misc, valid-type]
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self) -> None:
                outer.hits.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
        self.url = local_url(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture()
def server(tmp_path: Path, test_split) -> Iterator[tuple[_Server, Path, str]]:
    """A small mnist.npz in the Keras layout (real digits), served on 127.0.0.1."""
    folder = tmp_path / "www"
    folder.mkdir()
    npz = folder / "mnist.npz"
    as_bytes = {
        k: np.round(getattr(test_split, k)[:n] * 255).astype(np.uint8) for k, n in (("x_train", 300), ("x_test", 100))
    }
    np.savez(
        npz,
        x_train=as_bytes["x_train"].reshape(-1, 28, 28),
        y_train=test_split.y_train[:300].astype(np.uint8),
        x_test=as_bytes["x_test"].reshape(-1, 28, 28),
        y_test=test_split.y_test[:100].astype(np.uint8),
    )
    s = _Server(folder)
    try:
        yield s, npz, hashlib.sha256(npz.read_bytes()).hexdigest()
    finally:
        s.httpd.shutdown()


def test_download_checksum_and_cache(server, tmp_path: Path) -> None:
    srv, npz, sha = server
    cache = tmp_path / "cache"
    got = fetch(f"{srv.url}/mnist.npz", sha, cache)
    assert got == cache / "mnist.npz" and got.read_bytes() == npz.read_bytes() and len(srv.hits) == 1
    assert fetch(f"{srv.url}/mnist.npz", sha, cache) == got and len(srv.hits) == 1  # cached: no request
    split = load_split(got)
    assert (len(split.y_train), len(split.y_test)) == (300, 100) and split.description.startswith("official")
    got.write_bytes(b"corrupt")  # a damaged cache is fetched again
    assert fetch(f"{srv.url}/mnist.npz", sha, cache).read_bytes() == npz.read_bytes() and len(srv.hits) == 2


def test_wrong_checksum_is_an_error_and_keeps_nothing(server, tmp_path: Path) -> None:
    srv, _, _ = server
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="does not match the expected"):
        fetch(f"{srv.url}/mnist.npz", "0" * 64, cache)
    assert list(cache.iterdir()) == []


def test_unreachable_and_missing_are_clear_errors(server, tmp_path: Path) -> None:
    srv, _, sha = server
    with pytest.raises(DataError, match="cannot download"):
        fetch(f"{srv.url}/nope.npz", sha, tmp_path / "c1")
    with pytest.raises(DataError, match="only http and https"):
        fetch("file:///etc/passwd", sha, tmp_path / "c2")


def test_train_cli_download_option(server, tmp_path: Path) -> None:
    srv, _, sha = server
    env = {"MNIST_URL": f"{srv.url}/mnist.npz", "MNIST_SHA256": sha, "MNIST_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "training.train", "--download", "--out", str(tmp_path / "art")]
    proc = subprocess.run(
        [*cmd, "--epochs", "1", "--augment-copies", "0"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "300 train, 100 test" in proc.stdout and (tmp_path / "cache" / "mnist.npz").exists()
    assert (tmp_path / "art" / "manifest.json").exists()
