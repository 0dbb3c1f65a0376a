"""`python -m serving.native` (what `make serve` runs) survives a real kill of each server.

One stack of its own (so the session's shared stack is never disturbed), then, in order: SIGKILL
TF Serving, SIGKILL TorchServe's Java frontend, SIGKILL one TorchServe worker. Each time the
gateway answers 503 for that backend at once, `auto` falls back, the other server keeps serving,
and the stack recovers by itself. Ctrl-C then stops everything and leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mnist_serving.ports import local_url
from serving.native.settings import ServingPorts
from tests.conftest import REPO

ROW = {"instances": [[0.0] * 784]}
RECOVERY_TIMEOUT_S = 120.0


class NativeStack:
    def __init__(self, proc: subprocess.Popen[str], ports: ServingPorts):
        self.proc, self.ports = proc, ports
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for_line(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in self.lines):
            assert self.proc.poll() is None, "supervisor exited:\n" + "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {needle!r} after {timeout} s:\n" + "\n".join(self.lines)
            time.sleep(0.2)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def find(self, match: Callable[[list[str]], bool]) -> psutil.Process:
        for p in self.descendants():
            try:
                if match(p.cmdline()):
                    return p
            except psutil.NoSuchProcess:
                continue
        raise AssertionError("process not found")

    def predict(self, backend: str) -> httpx.Response:
        url = local_url(self.ports.gateway, f"/v1/predict?backend={backend}")
        return httpx.post(url, json=ROW, timeout=10)


@pytest.fixture(scope="module")
def native(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    ports = ServingPorts.free()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **{f"{k.upper()}_PORT": str(v) for k, v in ports.as_dict().items()}}
    run_dir = tmp_path_factory.mktemp("resilience-run")
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.native", "--artifacts", str(artifacts), "--run-dir", str(run_dir)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stack = NativeStack(proc, ports)
    try:
        stack.wait_for_line("Ctrl-C stops everything", 240)
        yield stack
    finally:
        if proc.poll() is None:
            left = stack.descendants()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            for p in left:
                if p.is_running():
                    p.kill()


def _eventually(check: Callable[[], bool], timeout: float = RECOVERY_TIMEOUT_S) -> float:
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        assert time.monotonic() - start < timeout, "did not recover in time"
        time.sleep(0.5)


def _backend_ready(stack: NativeStack, name: str) -> bool:
    r = httpx.get(local_url(stack.ports.gateway, "/v1/backends"), timeout=5)
    return next(b["ready"] for b in r.json()["backends"] if b["name"] == name)


def _expect_down_then_fallback(stack: NativeStack, down: str, other: str) -> None:
    started = time.monotonic()
    r = stack.predict(down)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["backend"] == down
    assert time.monotonic() - started < 1.5, "a dead backend must fail fast"
    assert stack.predict(other).status_code == 200
    auto = stack.predict("auto")
    assert auto.status_code == 200, auto.text
    assert auto.json()["backend"] != down
    ready = httpx.get(local_url(stack.ports.gateway, "/readyz"), timeout=5)
    assert ready.status_code == 200  # the other backend is still ready


def test_killed_tfserving_is_restarted_while_torchserve_serves(native: NativeStack) -> None:
    tf = native.find(lambda cmd: "serving.tfserving_standin" in cmd or any("tensorflow_model_server" in c for c in cmd))
    tf.kill()
    tf.wait(10)
    _expect_down_then_fallback(native, "tfserving", "torchserve")
    assert native.predict("auto").json().get("fallback_from") == "tfserving"
    native.wait_for_line("tfserving is ready again", RECOVERY_TIMEOUT_S)
    _eventually(lambda: native.predict("tfserving").status_code == 200)
    assert _backend_ready(native, "tfserving")
    assert any("tfserving was killed by signal 9; restarting" in line for line in native.lines)


def test_killed_torchserve_frontend_is_restarted(native: NativeStack) -> None:
    java = native.find(lambda cmd: bool(cmd) and cmd[0].endswith("java") and any("ModelServer" in c for c in cmd))
    java.kill()
    java.wait(10)
    _expect_down_then_fallback(native, "torchserve", "tfserving")
    native.wait_for_line("torchserve is ready again", RECOVERY_TIMEOUT_S)
    _eventually(lambda: native.predict("torchserve").status_code == 200)
    _eventually(lambda: native.predict("torchserve-onnx").status_code == 200)
    assert _backend_ready(native, "torchserve")


def test_killed_torchserve_worker_is_replaced_by_torchserve_itself(native: NativeStack) -> None:
    cli = native.find(lambda cmd: any(c.endswith("torchserve") for c in cmd) and "--foreground" in cmd)
    worker = native.find(lambda cmd: any("model_service_worker" in c for c in cmd))
    restarts_before = sum("restarting in" in line for line in native.lines)
    worker.kill()
    worker.wait(10)
    took = _eventually(lambda: native.predict("torchserve").status_code == 200 and _backend_ready(native, "torchserve"))
    _eventually(lambda: native.predict("torchserve-onnx").status_code == 200)
    assert native.predict("tfserving").status_code == 200
    assert cli.is_running(), "the supervisor must not restart TorchServe for a worker TorchServe replaces"
    assert sum("restarting in" in line for line in native.lines) == restarts_before
    assert took < RECOVERY_TIMEOUT_S


def test_ctrl_c_stops_everything_and_leaves_nothing(native: NativeStack) -> None:
    tree = native.descendants()
    assert len(tree) >= 4  # TF, TorchServe CLI + Java + workers, gateway
    native.proc.send_signal(signal.SIGINT)
    assert native.proc.wait(60) == 0
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
    assert "stopped." in native.lines[-1]
