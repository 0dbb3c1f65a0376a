"""The supervisor's state machine, Envoy/gRPC style: a simulated clock, fake processes and checks
whose answers the test scripts, and the exact trace of states. Then the same policy on real child
processes (backoff, recovery, crash loop, ports held by an orphan or by a stranger, a hung check on
a real thread)."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

import psutil

from serving.native.process import ManagedProcess, PortHolder, free_ports, port_holders
from serving.native.supervisor import (
    LIVENESS,
    Check,
    Health,
    Probe,
    RestartPolicy,
    State,
    Supervisor,
    describe_exit,
)

FAST = RestartPolicy(initial_backoff_s=0.05, max_backoff_s=0.4, max_restarts=3, window_s=30.0)
STEP_S = 0.5  # the simulated supervisor ticks this often


# ---- fakes: a clock, a process, checks, port holders ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeProcess:
    """Runs until it exits or is killed; every start is a new session (100, 101 ...)."""

    def __init__(self, name: str = "server") -> None:
        self.name, self.log_path = name, Path(f"/run/{name}.log")
        self.alive, self.session = True, 100
        self.returncode: int | None = None
        self.starts = self.kills = 0

    def start(self) -> None:
        self.starts += 1
        self.session += 1
        self.alive, self.returncode = True, None

    def kill(self) -> None:
        self.kills += 1
        if self.alive:
            self.alive, self.returncode = False, -9

    def exit(self, code: int) -> None:
        self.alive, self.returncode = False, code


class Hang(Exception):
    """Raised by a scripted check: the check never returns (a stopped server accepts, never answers)."""


def runner(check: Check) -> Future[bool]:
    """Runs the check at once; a hanging one gives a future that never completes."""
    future: Future[bool] = Future()
    try:
        future.set_result(check())
    except Hang:
        pass
    except Exception as exc:
        future.set_exception(exc)
    return future


class Script:
    """A check whose answer at each simulated time comes from ``answer(now)``; counts its calls."""

    def __init__(self, clock: Clock, answer: Callable[[float], bool | type[Exception] | Exception]) -> None:
        self.clock, self.answer, self.calls = clock, answer, 0

    def __call__(self) -> bool:
        self.calls += 1
        out = self.answer(self.clock.now)
        if isinstance(out, Exception) or (isinstance(out, type) and issubclass(out, Exception)):
            raise out
        return out


class Ports:
    """Fake holders: port -> PortHolder while held; kill_holder frees what it kills."""

    def __init__(self) -> None:
        self.held: dict[int, PortHolder] = {}
        self.killed: list[int] = []

    def find(self, ports: Mapping[str, int]) -> list[PortHolder]:
        return [self.held[p] for p in ports.values() if p in self.held]

    def kill(self, pid: int) -> None:
        self.killed.append(pid)
        self.held = {port: h for port, h in self.held.items() if h.pid != pid}


def simulated(policy: RestartPolicy | None = None) -> tuple[Supervisor, Clock, list[str], Ports]:
    clock, lines, ports = Clock(), list[str](), Ports()
    sup = Supervisor(policy, lines.append, clock=clock, runner=runner, find_holders=ports.find, kill_holder=ports.kill)
    return sup, clock, lines, ports


def run(sup: Supervisor, clock: Clock, until: float, name: str = "server") -> list[tuple[float, str]]:
    """Tick every STEP_S up to ``until``; the trace: (time, state) at each change."""
    trace = [(clock.now, sup.describe()[name])]
    while clock.now < until:
        clock.now += STEP_S
        sup.tick()
        state = sup.describe()[name]
        if state != trace[-1][1]:
            trace.append((clock.now, state))
    return trace


# ---- hung in READY, slow in STARTING: exact traces ----------------------------------------------


def test_a_hung_server_is_killed_after_three_missed_checks_and_restarted() -> None:
    """Default probe (every 3 s, 2 s each, 3 in a row). It answers until t=10, then hangs: the checks
    at 12, 15, 18 time out at 14, 17, 20; killed at 20; restarted after the 1 s backoff; readiness
    asked from the next tick, once a second (21.5 ... 24.5), ready at 24.5; then checked every 3 s."""
    sup, clock, lines, _ = simulated()
    proc = FakeProcess()
    live = Script(clock, lambda t: Hang if 10 <= t < 21 else True)
    ready = Script(clock, lambda t: t >= 24)
    sup.watch(proc, Health(ready, live, start_timeout_s=60, ports={"http": 8501}))
    assert Probe(period_s=3.0, timeout_s=2.0, failure_threshold=3) == LIVENESS

    trace = run(sup, clock, until=40)

    assert trace == [
        (0, "READY"),
        (14, "READY(miss 1)"),
        (17, "READY(miss 2)"),
        (20, "BACKOFF"),
        (21, "STARTING"),
        (24.5, "READY"),
    ]
    assert proc.kills == 1 and proc.starts == 1 and proc.alive
    assert lines == [
        "warning: server stopped answering its health check (3 failed in a row, 3 s apart; last: no answer "
        "within 2 s); killed it; restarting in 1.0 s (restart 1 of at most 5 in 120 s)",
        "server is ready again after 3.5 s",
    ]
    assert ready.calls == 4  # at 21.5, 22.5, 23.5, 24.5
    # at 3, 6, 9 answered; 12, 15, 18 hung; from 24.5 every 3 s again: 27.5, 30.5, 33.5, 36.5, 39.5
    assert live.calls == 3 + 3 + 5


def test_a_check_that_answers_again_resets_the_count() -> None:
    """Two misses (a refused connection, a no), then an answer: back to READY, never killed."""
    sup, clock, lines, _ = simulated()
    proc = FakeProcess()

    def answer(t: float) -> bool | Exception:
        if 5 < t < 8:
            return ConnectionRefusedError("connection refused")
        return not 8 <= t < 11  # a "no" from 8 to 11

    sup.watch(proc, Health(lambda: True, Script(clock, answer)))
    assert run(sup, clock, until=30) == [(0, "READY"), (6, "READY(miss 1)"), (9, "READY(miss 2)"), (12, "READY")]
    assert proc.kills == 0 and lines == []


def test_a_server_never_ready_within_its_budget_is_killed_under_the_same_backoff_and_crash_loop() -> None:
    """It crashes at t=1; each restart then stays STARTING past its 10 s budget: killed, backed off
    (1 s, 2 s), and the third time it is a crash loop: left down."""
    policy = RestartPolicy(max_restarts=2)
    sup, clock, lines, _ = simulated(policy)
    proc = FakeProcess()
    ready = Script(clock, lambda t: False)
    sup.watch(proc, Health(ready, Script(clock, lambda t: True), start_timeout_s=10))
    clock.now = 1.0
    proc.exit(1)
    sup.tick()

    trace = run(sup, clock, until=40)

    assert trace == [(1, "BACKOFF"), (2, "STARTING"), (12, "BACKOFF"), (14, "STARTING"), (24, "FAILED")]
    assert proc.starts == 2 and proc.kills == 3 and not proc.alive
    assert lines == [
        "warning: server exited with code 1; restarting in 1.0 s (restart 1 of at most 2 in 120 s)",
        "warning: server was not ready within 10 s of its start; killed it; restarting in 2.0 s "
        "(restart 2 of at most 2 in 120 s)",
        "error: server was not ready within 10 s of its start after 2 restarts in 120 s: crash loop, "
        "leaving it down; see /run/server.log",
    ]


def test_a_readiness_check_that_hangs_does_not_stall_starting() -> None:
    """While STARTING a hung readiness check is abandoned after its 5 s and asked again at the next
    tick (its period is long past): at 1.5 (abandoned at 6.5), 7 (abandoned at 12), 12.5 (ready)."""
    sup, clock, _, _ = simulated()
    proc = FakeProcess()
    ready = Script(clock, lambda t: Hang if t < 8 else True)
    sup.watch(proc, Health(ready, Script(clock, lambda t: True), start_timeout_s=60))
    proc.exit(1)
    sup.tick()  # t=0: BACKOFF, STARTING at 1
    assert run(sup, clock, until=14) == [(0, "BACKOFF"), (1, "STARTING"), (12.5, "READY")]
    assert ready.calls == 3


# ---- ports before a restart ---------------------------------------------------------------------


def test_a_port_left_held_by_the_killed_servers_session_is_freed_by_killing_the_orphan() -> None:
    sup, clock, lines, ports = simulated()
    proc = FakeProcess()
    sup.watch(proc, Health(lambda: True, ports={"grpc": 7070, "http": 8080}))
    orphan = PortHolder("http", 8080, pid=4242, pgid=4242, sid=proc.session, command="java ModelServer")
    ports.held[8080] = orphan
    proc.exit(-9)
    clock.now = 1.0
    sup.tick()  # BACKOFF, restart due at 2

    trace = run(sup, clock, until=5)

    assert trace == [(1, "BACKOFF"), (3, "STARTING"), (3.5, "READY")]
    assert ports.killed == [4242] and proc.starts == 1
    assert lines[1:] == [
        "server: killed pid 4242 (java ModelServer), left behind by the killed server and still holding "
        "port 8080 (http)",
        "warning: server not restarted yet: port 8080 (http) is being freed (pid 4242 killed); looking again every 1 s",
        "server: its ports are free again; restarting it",
        "server is ready again after 0.5 s",
    ]


def test_a_port_held_by_a_stranger_is_waited_for_and_said_once() -> None:
    sup, clock, lines, ports = simulated()
    proc = FakeProcess()
    sup.watch(proc, Health(lambda: True, ports={"http": 8501}))
    stranger = PortHolder("http", 8501, pid=77, pgid=77, sid=77, command="nc -l 8501")
    ports.held[8501] = stranger
    proc.exit(-9)
    sup.tick()  # t=0: BACKOFF until 1, then waits: rechecks every second, says it once

    trace = run(sup, clock, until=6)
    assert trace == [(0, "BACKOFF")] and proc.starts == 0 and ports.killed == []
    waiting = [line for line in lines if "not restarted yet" in line]
    assert waiting == [
        "warning: server not restarted yet: port 8501 (http) is held by pid 77 (nc -l 8501; session 77), not "
        "by this server; looking again every 1 s"
    ]
    del ports.held[8501]
    assert run(sup, clock, until=8)[1:] == [(7, "STARTING"), (7.5, "READY")]


# ---- the policy on real child processes --------------------------------------------------------


def _proc(tmp_path: Path, code: str, name: str = "child") -> ManagedProcess:
    p = ManagedProcess(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")
    p.start()
    return p


def _tick_until(sup: Supervisor, done: Callable[[], bool], timeout: float = 20.0) -> None:
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
    sup.watch(proc, lambda: proc.alive)
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
    sup.watch(proc, lambda: False)
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
    sup.watch(proc, lambda: True)
    child = sup.children["child"]
    child.restarts = [100.0, 101.0]
    try:
        sup.tick(now=105.0)
        assert len(child.restarts) == 2  # still inside the window
        sup.tick(now=111.5)
        assert child.restarts == []
    finally:
        proc.stop()


def test_one_hung_check_does_not_delay_the_others(tmp_path: Path) -> None:
    """Real threads and clock: A's check blocks for 3 s, B's answers; no tick waits for A's check,
    A is killed after two timed-out checks, B is checked on schedule throughout."""
    policy = RestartPolicy(initial_backoff_s=30.0, liveness=Probe(period_s=0.2, timeout_s=0.2, failure_threshold=2))
    sup = Supervisor(policy, lambda _: None)
    a, b = FakeProcess("a"), FakeProcess("b")
    b_checks: list[float] = []

    def hangs() -> bool:
        time.sleep(3)
        return True

    def answers() -> bool:
        b_checks.append(time.monotonic())
        return True

    sup.watch(a, Health(lambda: True, hangs))
    sup.watch(b, Health(lambda: True, answers))
    slowest = 0.0
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        started = time.monotonic()
        sup.tick()
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.02)
    assert sup.describe() == {"a": "BACKOFF", "b": "READY"} and a.kills == 1
    assert slowest < 0.1, slowest
    assert len(b_checks) >= 5  # every 0.2 s over 1.5 s, minus the first period


ORPHAN = textwrap.dedent(
    """
    import os, socket, sys, time
    port, marker = int(sys.argv[1]), sys.argv[2]
    if os.path.exists(marker):  # the restart: stay up
        time.sleep(60)
    open(marker, "w").close()
    if os.fork() == 0:  # a worker that leaves the process group (not the session) and keeps the port
        os.setpgid(0, 0)
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        open(marker + ".listening", "w").close()
        time.sleep(60)
    while not os.path.exists(marker + ".listening"):
        time.sleep(0.01)
    sys.exit(1)  # the server dies; its worker lives on, holding the port
    """
)


def test_a_real_orphan_holding_the_port_is_killed_before_the_restart(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    marker = tmp_path / "started"
    proc = ManagedProcess("orphaned", [sys.executable, "-c", ORPHAN, str(port), str(marker)], tmp_path / "o.log")
    lines: list[str] = []
    sup = Supervisor(FAST, lines.append)
    proc.start()
    first_session = proc.session
    sup.watch(proc, Health(lambda: proc.alive, ports={"http": port}))
    try:
        _tick_until(sup, lambda: proc.session != first_session and sup.states()["orphaned"] is State.READY)
        killed = [line for line in lines if "left behind by the killed server" in line]
        assert len(killed) == 1 and f"still holding port {port} (http)" in killed[0], lines
        orphan_pid = int(killed[0].split("killed pid ")[1].split()[0])
        assert not psutil.pid_exists(orphan_pid) or psutil.Process(orphan_pid).status() == psutil.STATUS_ZOMBIE
    finally:
        proc.stop()


def test_a_real_stranger_on_the_port_is_named_and_waited_for(tmp_path: Path) -> None:
    stranger = socket.socket()
    stranger.bind(("127.0.0.1", 0))
    stranger.listen()
    port = stranger.getsockname()[1]
    (held,) = port_holders({"http": port})
    assert (held.pid, held.sid) == (os.getpid(), os.getsid(0))
    proc = _proc(tmp_path, "import time; time.sleep(60)")
    lines: list[str] = []
    sup = Supervisor(FAST, lines.append)
    sup.watch(proc, Health(lambda: proc.alive, ports={"http": port}))
    try:
        proc.kill()
        _tick_until(sup, lambda: any("not restarted yet" in line for line in lines))
        assert f"is held by pid {os.getpid()}" in lines[-1] and "not by this server" in lines[-1]
        time.sleep(FAST.port_recheck_s + 0.1)
        sup.tick()  # looked again: still held
        assert sup.states()["child"] is State.BACKOFF and proc.alive is False  # still waiting, said once
        assert sum("not restarted yet" in line for line in lines) == 1
        stranger.close()
        _tick_until(sup, lambda: sup.states()["child"] is State.READY)
        assert any("ports are free again" in line for line in lines)
    finally:
        stranger.close()
        proc.stop()


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "was killed by signal 9"
    assert describe_exit(2) == "exited with code 2"
    assert describe_exit(None) == "stopped"


def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    grace_s = 0.5
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    proc = _proc(tmp_path, code)
    deadline = time.monotonic() + 10
    while "up" not in (tmp_path / "child.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    proc.stop(grace_s=grace_s)
    took = time.monotonic() - started
    assert proc.returncode == -9 and grace_s <= took < grace_s + 1.0, took


def test_checks_run_off_the_calling_thread() -> None:
    """The default runner: a check runs on a thread of its own, off the calling thread."""
    sup = Supervisor(RestartPolicy(), lambda _: None)
    seen: list[str] = []

    def check() -> bool:
        seen.append(threading.current_thread().name)
        return True

    assert sup.runner(check).result(timeout=5) is True
    assert seen and seen[0] != threading.current_thread().name
