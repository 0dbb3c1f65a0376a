"""Start -> ready -> stop leaves nothing behind, and a second start works."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from mnist_serving.ports import local_url
from serving.native.process import StartError
from serving.native.settings import ServingPorts
from serving.native.stack import ServingStack
from tests.conftest import REPO


def _tree(stack: ServingStack) -> list[psutil.Process]:
    procs = []
    for p in stack.processes:
        assert p.proc is not None
        parent = psutil.Process(p.proc.pid)
        procs += [parent, *parent.children(recursive=True)]
    return procs


def test_start_stop_twice_leaves_no_process(artifacts: Path, tmp_path: Path, monkeypatch) -> None:
    ports = ServingPorts.free()
    monkeypatch.chdir(tmp_path)  # relative paths, as `make serve` passes them
    for attempt in range(2):
        stack = ServingStack(Path(os.path.relpath(artifacts)), Path(f"run{attempt}"), ports)
        stack.start()
        try:
            tree = _tree(stack)
            assert any("java" in " ".join(p.cmdline()) for p in tree), "TorchServe's JVM not found"
            r = httpx.post(
                local_url(ports.torchserve_inference, "/predictions/mnist"),
                json={"instances": [[0.0] * 784]},
                timeout=10,
            )
            assert r.status_code == 200
        finally:
            stack.stop()
        gone, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
        assert all(p.name for p in gone)


def test_busy_port_is_a_clear_error(artifacts: Path, tmp_path: Path) -> None:
    ports = ServingPorts.free()
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.torchserve_inference))
        s.listen()
        with pytest.raises(StartError, match=f"torchserve_inference={ports.torchserve_inference}"):
            ServingStack(artifacts, tmp_path, ports).start()


def test_cli_without_artifacts_fails_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "serving.native", "--artifacts", str(tmp_path / "none"), "--run-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "make train" in proc.stderr
