"""`python -m serving.native` (what `make serve` runs) replaces a hung TorchServe, and stops fast.

The issue's case: TorchServe's Java frontend SIGSTOPped. Its port still accepts connections (the
kernel does that) but nothing answers, and the process is alive: before the liveness check the
supervisor left it READY forever (60 s watched), and stop() waited out two 15 s grace periods.
Now the supervisor's liveness check (``/ping``, 2 s each, every 3 s, 3 in a row) finds it hung, it is
killed and restarted, and serves again; and stopping a hung TorchServe takes < 5 s.

Its own TorchServe on free ports (the session's shared stack is never disturbed); one restart.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from mnist_serving.ports import local_url
from mnist_serving.spec import ONNX_MODEL_NAME, TORCH_MODEL_NAME
from serving.native.settings import ServingPorts
from tests.conftest import REPO

START_TIMEOUT_S = 240.0
REPLACED_TIMEOUT_S = 120.0  # detection (~11 s) + 1 s backoff + TorchServe's start (~4 s idle here)
STOP_GOAL_S = 5.0  # the goal for stop()


class Runner:
    """The native runner as a child process, its output collected line by line."""

    def __init__(self, proc: subprocess.Popen[str], ports: ServingPorts) -> None:
        self.proc, self.ports, self.lines = proc, ports, list[str]()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if needle in line]
            if found:
                return found[0]
            assert self.proc.poll() is None, "runner exited:\n" + "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {needle!r} after {timeout} s:\n" + "\n".join(self.lines)
            time.sleep(0.1)

    def jvm(self) -> psutil.Process:
        """TorchServe's Java frontend (org.pytorch.serve.ModelServer)."""
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if p.status() != psutil.STATUS_ZOMBIE and any("ModelServer" in c for c in p.cmdline()):
                    return p
            except psutil.NoSuchProcess:
                continue
        raise AssertionError("no TorchServe frontend running")


@pytest.fixture(scope="module")
def runner(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    ports = ServingPorts.free()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **{f"{k.upper()}_PORT": str(v) for k, v in ports.as_dict().items()}}
    run_dir = tmp_path_factory.mktemp("hung-torchserve")
    cmd = [sys.executable, "-m", "serving.native", "--artifacts", str(artifacts), "--run-dir", str(run_dir),
           "--servers", "torchserve", "--no-gateway"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    runner = Runner(proc, ports)
    try:
        runner.wait_for("Ctrl-C stops everything", START_TIMEOUT_S)
        yield runner
    finally:
        left = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()


def _running(p: psutil.Process) -> bool:
    """Still there and not a zombie (which only waits for its parent, or init, to reap it)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _predict(ports: ServingPorts, model: str, rows: np.ndarray) -> np.ndarray:
    url = local_url(ports.torchserve_inference, f"/predictions/{model}")
    r = httpx.post(url, json={"instances": rows.tolist()}, timeout=10)
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["predictions"])


def test_a_sigstopped_torchserve_is_killed_and_replaced(runner: Runner, rows: np.ndarray) -> None:
    before = {m: _predict(runner.ports, m, rows[:8]) for m in (TORCH_MODEL_NAME, ONNX_MODEL_NAME)}
    old = runner.jvm()
    os.kill(old.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()

    notice = runner.wait_for("stopped answering its health check", 60)
    detected = time.monotonic() - stopped_at
    ready = runner.wait_for("torchserve is ready again", REPLACED_TIMEOUT_S)
    replaced = time.monotonic() - stopped_at
    print(
        f"\nhung TorchServe: killed {detected:.1f} s after SIGSTOP, READY again {replaced:.1f} s after it "
        f"(the restart itself: {ready.split('after ')[-1]})"
    )

    assert "3 failed in a row" in notice and "killed it; restarting in 1.0 s" in notice, notice
    new = runner.jvm()
    assert new.pid != old.pid and new.status() != psutil.STATUS_STOPPED
    assert not _running(old)  # the stopped one is gone
    for model, answer in before.items():  # the new one serves the same answers
        np.testing.assert_allclose(_predict(runner.ports, model, rows[:8]), answer, atol=1e-6)
    assert sum("restarting in" in line for line in runner.lines) == 1, runner.lines


def test_stopping_a_hung_torchserve_takes_under_5_s(runner: Runner) -> None:
    """Ctrl-C while its JVM is SIGSTOPped (it acts on SIGTERM only once continued): the runner's
    stop() sends SIGTERM and SIGCONT, and SIGKILLs what is left after its 3 s grace."""
    tree = psutil.Process(runner.proc.pid).children(recursive=True)
    os.kill(runner.jvm().pid, signal.SIGSTOP)
    started = time.monotonic()
    runner.proc.send_signal(signal.SIGINT)
    assert runner.proc.wait(30) == 0
    took = time.monotonic() - started
    runner.reader.join(5)  # every line read
    (reported,) = [float(m[1]) for line in runner.lines if (m := re.fullmatch(r"stopped\. \(([\d.]+) s\)", line))]
    print(f"\nstop() of a hung TorchServe: {reported:.1f} s (the runner's own figure); SIGINT to exit {took:.1f} s")
    assert reported < STOP_GOAL_S
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not [p for p in alive if _running(p)], alive
