"""The TorchServe container entrypoint forwards SIGTERM to the Java frontend and exits 0.

Real processes stand in for TorchServe: a "CLI" that starts a child named like the frontend
(org.pytorch.serve.ModelServer) and waits for it without a signal handler, as `torchserve
--foreground` does. The real image is stopped with `docker stop` in the container test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

FRONTEND = """
import signal, sys, time, pathlib
marks = pathlib.Path(sys.argv[1])
def stop(*_):
    (marks / "got-sigterm").touch()
    time.sleep(0.3)  # finishing in-flight requests
    sys.exit(143)
if sys.argv[2] == "obeys":
    signal.signal(signal.SIGTERM, stop)
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
(marks / "started").touch()
while True:
    time.sleep(0.1)
"""
CLI = """
import subprocess, sys
p = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3], "org.pytorch.serve.ModelServer"])
p.wait()
"""


def _launcher(tmp_path: Path, behaviour: str, grace_s: str = "20") -> subprocess.Popen[bytes]:
    code = (
        "import sys; from serving.torchserve.launch import run; "
        f"sys.exit(run([sys.executable, '-c', {CLI!r}, {FRONTEND!r}, {str(tmp_path)!r}, {behaviour!r}]))"
    )
    env = {**os.environ, "TS_STOP_GRACE_S": grace_s}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, start_new_session=True)
    deadline = time.monotonic() + 20
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "fake frontend did not start"
        time.sleep(0.05)
    return proc


def test_sigterm_reaches_the_frontend_and_the_exit_is_clean(tmp_path: Path) -> None:
    proc = _launcher(tmp_path, "obeys")
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert (tmp_path / "got-sigterm").exists()
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("how", ["grace", "second signal"])
def test_a_frontend_that_will_not_stop_is_killed(tmp_path: Path, how: str) -> None:
    proc = _launcher(tmp_path, "ignores", grace_s="1" if how == "grace" else "60")
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    if how == "second signal":
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert time.monotonic() - start < 6
    alive = [
        p
        for p in psutil.process_iter(["status"])
        if p.info["status"] != psutil.STATUS_ZOMBIE and _pgid(p.pid) == proc.pid
    ]
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
