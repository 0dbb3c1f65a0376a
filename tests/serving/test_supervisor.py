"""The supervisor's restart policy on real child processes: backoff, recovery, crash loop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from serving.native.process import ManagedProcess
from serving.native.supervisor import RestartPolicy, State, Supervisor, describe_exit

FAST = RestartPolicy(initial_backoff_s=0.05, max_backoff_s=0.4, max_restarts=3, window_s=30.0)


def _proc(tmp_path: Path, code: str, name: str = "child") -> ManagedProcess:
    p = ManagedProcess(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")
    p.start()
    return p


def _tick_until(sup: Supervisor, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out; states {sup.states()}"
        sup.tick()
        time.sleep(0.02)


def test_backoff_doubles_up_to_the_cap() -> None:
    p = RestartPolicy(initial_backoff_s=1.0, max_backoff_s=5.0)
    assert [p.backoff(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_killed_process_is_restarted_and_becomes_ready(tmp_path: Path) -> None:
    lines: list[str] = []
    proc = _proc(tmp_path, "import time; time.sleep(60)")
    sup = Supervisor(FAST, lines.append)
    sup.watch(proc, ready=lambda: proc.alive)
    first_pid = proc.pid
    try:
        proc.proc.kill()  # type: ignore[union-attr]
        _tick_until(sup, lambda: sup.states()["child"] is State.READY and proc.pid != first_pid)
        assert proc.alive and proc.pid != first_pid
        assert any("was killed by signal 9; restarting in 0.1 s" in line for line in lines), lines
        assert any("child is ready again" in line for line in lines), lines
    finally:
        proc.stop()


def test_crash_loop_leaves_the_process_down_and_says_so(tmp_path: Path) -> None:
    lines: list[str] = []
    proc = _proc(tmp_path, "import sys, time; time.sleep(0.1); sys.exit(3)")
    sup = Supervisor(FAST, lines.append)
    sup.watch(proc, ready=lambda: False)
    _tick_until(sup, lambda: sup.states()["child"] is State.FAILED)
    restarts = [line for line in lines if "restarting in" in line]
    assert [r.split("restarting in ")[1].split(" s")[0] for r in restarts] == ["0.1", "0.1", "0.2"]  # 0.05, 0.1, 0.2
    assert "crash loop, leaving it down" in lines[-1] and "exited with code 3" in lines[-1]
    for _ in range(20):  # and it stays down
        sup.tick()
    assert not proc.alive and sup.states()["child"] is State.FAILED


def test_a_stable_process_gets_its_backoff_back(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "import time; time.sleep(60)")
    sup = Supervisor(RestartPolicy(window_s=10.0), lambda _: None)
    sup.watch(proc, ready=lambda: True)
    child = sup.children["child"]
    child.restarts = [100.0, 101.0]
    try:
        sup.tick(now=105.0)
        assert len(child.restarts) == 2  # still inside the window
        sup.tick(now=111.5)
        assert child.restarts == []
    finally:
        proc.stop()


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "was killed by signal 9"
    assert describe_exit(2) == "exited with code 2"
