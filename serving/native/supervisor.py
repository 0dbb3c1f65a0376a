"""Keep the native stack up: restart a server that crashed, hung or never got ready, with exponential
backoff, as systemd, supervisord, Docker and Kubernetes do, and leave its neighbours alone.

Each process is STARTING (started, not yet ready), READY, BACKOFF (down, waiting to restart) or
FAILED (crash loop: left down). Like Kubernetes' probes:

- STARTING: its readiness check ("model ready") runs every ``readiness.period_s``; a process that is
  not ready within its start budget (``Health.start_timeout_s``) is killed and restarted.
- READY: its liveness check ("the process answers": cheap, never "model ready") runs every
  ``liveness.period_s``, each allowed ``liveness.timeout_s``; ``liveness.failure_threshold`` failures
  in a row mean hung: it is killed (SIGKILL of its process group: a stopped process does not act on
  SIGTERM) and restarted.

Each check runs on a thread of its own: ``tick()`` only starts checks and collects finished ones, so
one hung server never delays supervising the others, nor do their checks wait behind its. A check
still running at its timeout counts as a failure (checks bound themselves too: their HTTP timeout is
the probe's).

A process that exits, hangs or never gets ready is restarted after ``initial_backoff_s``, doubling up
to ``max_backoff_s``. More than ``max_restarts`` restarts within ``window_s`` is a crash loop: the
process stays down and the supervisor says so. One READY for ``window_s`` has its backoff reset.

Before a restart its ports are checked. A port still held by what the killed server left behind (a
process of its session) is freed by killing that process; a port held by anything else is waited
for, and the notice says by whom: a server is never started onto a busy port without saying why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from serving.native.process import PortHolder, port_holders

Notify = Callable[[str], None]
Check = Callable[[], bool]  # True: passed; False or an exception: failed
Runner = Callable[[Check], "Future[bool]"]  # starts a check, off the caller's thread
FindHolders = Callable[[Mapping[str, int]], list[PortHolder]]


@dataclass(frozen=True)
class Probe:
    """As a Kubernetes probe: a check every ``period_s`` (from the start of the last one), each
    allowed ``timeout_s``; ``failure_threshold`` consecutive failures trip it."""

    period_s: float
    timeout_s: float
    failure_threshold: int = 1


# A server is hung after ~9 s without an answer: 3 checks 3 s apart, 2 s each. Generous on purpose:
# on 2 shared cores under a load test a busy but healthy server still answers a ping within
# milliseconds, and a false kill costs a restart (TorchServe: ~6 s here; the stand-in ~3 s).
LIVENESS = Probe(period_s=3.0, timeout_s=2.0, failure_threshold=3)
# While STARTING: how often "model ready" is asked (TorchServe's answer takes two management calls).
READINESS = Probe(period_s=1.0, timeout_s=5.0)
PORT_RECHECK_S = 1.0  # a restart waiting for a busy port looks again this often


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_restarts: int = 5  # within window_s; one more crash and the process stays down
    window_s: float = 120.0
    liveness: Probe = LIVENESS
    readiness: Probe = READINESS
    port_recheck_s: float = PORT_RECHECK_S

    def backoff(self, restarts_so_far: int) -> float:
        return min(self.max_backoff_s, self.initial_backoff_s * 2**restarts_so_far)


@dataclass(frozen=True)
class Health:
    """How the supervisor tells a process is up: ``ready`` ends STARTING, ``live`` (None: the
    process running is enough) keeps it READY; ``ports`` are checked before each restart."""

    ready: Check
    live: Check | None = None
    start_timeout_s: float = 120.0
    ports: Mapping[str, int] = field(default_factory=dict)


class Process(Protocol):
    """What the supervisor needs of a process (serving.native.process.ManagedProcess)."""

    name: str
    log_path: Path

    @property
    def alive(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def session(self) -> int | None: ...

    def start(self) -> None: ...

    def kill(self) -> None: ...


class State(Enum):
    STARTING = "starting"  # (re)started, not yet ready
    READY = "ready"
    BACKOFF = "backoff"  # down; waiting to restart
    FAILED = "failed"  # crash loop: left down


@dataclass
class Supervised:
    process: Process
    health: Health
    started_at: float
    state: State = State.READY
    restarts: list[float] = field(default_factory=list)  # times of recent restarts
    restart_at: float = 0.0
    misses: int = 0  # consecutive failed liveness checks
    last_failure: str = ""
    next_check_at: float = 0.0
    check: Future[bool] | None = None  # the check in flight
    check_started: float = 0.0
    waiting_for: str = ""  # the busy-port notice last given, so it is given once

    @property
    def name(self) -> str:
        return self.process.name

    def describe(self) -> str:
        """The state as a trace shows it: READY, READY(miss 2), BACKOFF ..."""
        miss = f"(miss {self.misses})" if self.state is State.READY and self.misses else ""
        return self.state.name + miss


def run_in_thread(check: Check) -> Future[bool]:
    """The default runner: each check on a daemon thread of its own, so a check that overstays its
    timeout holds up no other check (as it would in a shared pool) nor the interpreter's exit."""
    future: Future[bool] = Future()

    def run() -> None:
        try:
            future.set_result(check())
        except Exception as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="supervisor-check", daemon=True).start()
    return future


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


class Supervisor:
    """Call ``tick()`` periodically; it never blocks on a check (a kill waits at most ~1 s to reap)."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        notify: Notify = print,
        *,
        clock: Callable[[], float] = time.monotonic,
        runner: Runner = run_in_thread,
        find_holders: FindHolders = port_holders,
        kill_holder: Callable[[int], None] = kill_pid,
    ):
        self.policy = policy or RestartPolicy()
        self.notify = notify
        self.clock, self.runner = clock, runner
        self.find_holders, self.kill_holder = find_holders, kill_holder
        self.children: dict[str, Supervised] = {}

    def watch(self, process: Process, health: Health | Check) -> None:
        """Supervise a process that is already started and ready (a bare check: its readiness)."""
        if not isinstance(health, Health):
            health = Health(ready=health)
        now = self.clock()
        child = Supervised(process, health, started_at=now, next_check_at=now + self.policy.liveness.period_s)
        self.children[process.name] = child

    def states(self) -> dict[str, State]:
        return {name: child.state for name, child in self.children.items()}

    def describe(self) -> dict[str, str]:
        return {name: child.describe() for name, child in self.children.items()}

    def tick(self, now: float | None = None) -> None:
        for child in self.children.values():
            self._step(child, self.clock() if now is None else now)

    # ---- one step of one process ------------------------------------------------------------

    def _step(self, child: Supervised, now: float) -> None:
        p = self.policy
        if child.state in (State.READY, State.STARTING) and not child.process.alive:
            self._restart(child, now, describe_exit(child.process.returncode), killed=False)
        elif child.state is State.BACKOFF:
            if now >= child.restart_at:
                self._start(child, now)
        elif child.state is State.STARTING:
            if now - child.started_at >= child.health.start_timeout_s:
                budget = child.health.start_timeout_s
                self._restart(child, now, f"was not ready within {budget:g} s of its start", killed=True)
            elif self._probe(child, now, child.health.ready, p.readiness):
                child.state, child.misses = State.READY, 0
                child.next_check_at = now + p.liveness.period_s
                self.notify(f"{child.name} is ready again after {now - child.started_at:.1f} s")
        elif child.state is State.READY:
            if child.restarts and now - child.restarts[-1] >= p.window_s:
                child.restarts.clear()  # stable again: the next crash starts from the shortest backoff
            if child.health.live is None:
                return
            result = self._probe(child, now, child.health.live, p.liveness)
            if result is True:
                child.misses = 0
            elif result is False:
                child.misses += 1
                if child.misses >= p.liveness.failure_threshold:
                    self._restart(
                        child,
                        now,
                        f"stopped answering its health check ({child.misses} failed in a row, "
                        f"{p.liveness.period_s:g} s apart; last: {child.last_failure})",
                        killed=True,
                    )

    def _probe(self, child: Supervised, now: float, check: Check, probe: Probe) -> bool | None:
        """Start the check when due; the outcome of the one in flight once it is known, else None."""
        if child.check is None:
            if now < child.next_check_at:
                return None
            child.check, child.check_started = self.runner(check), now
        future = child.check
        if not future.done():
            if now - child.check_started < probe.timeout_s:
                return None
            child.check, child.next_check_at = None, child.check_started + probe.period_s
            child.last_failure = f"no answer within {probe.timeout_s:g} s"
            return False  # left to finish on its own thread; its answer no longer counts
        child.check, child.next_check_at = None, child.check_started + probe.period_s
        try:
            ok = bool(future.result())
        except Exception as exc:  # a refused connection, a timeout in the check itself ...
            child.last_failure = f"{type(exc).__name__}: {exc}"[:200]
            return False
        if not ok:
            child.last_failure = "the check said no"
        return ok

    def _restart(self, child: Supervised, now: float, what: str, killed: bool) -> None:
        """Kill the process (``killed``: it was running) or what it left, then back off, or give up
        on a crash loop."""
        p = self.policy
        child.process.kill()  # hung: SIGKILL (a stopped process ignores SIGTERM); exited: its leftovers
        child.check, child.misses = None, 0
        child.restarts = [t for t in child.restarts if now - t < p.window_s]
        if len(child.restarts) >= p.max_restarts:
            child.state = State.FAILED
            self.notify(
                f"error: {child.name} {what} after {len(child.restarts)} restarts in {p.window_s:.0f} s: "
                f"crash loop, leaving it down; see {child.process.log_path}"
            )
            return
        delay = p.backoff(len(child.restarts))
        child.state, child.restart_at = State.BACKOFF, now + delay
        self.notify(
            f"warning: {child.name} {what}{'; killed it' if killed else ''}; restarting in {delay:.1f} s "
            f"(restart {len(child.restarts) + 1} of at most {p.max_restarts} in {p.window_s:.0f} s)"
        )

    def _start(self, child: Supervised, now: float) -> None:
        busy = self._busy_ports(child)
        if busy:
            child.restart_at = now + self.policy.port_recheck_s
            if busy != child.waiting_for:
                self.notify(
                    f"warning: {child.name} not restarted yet: {busy}; "
                    f"looking again every {self.policy.port_recheck_s:g} s"
                )
            child.waiting_for = busy
            return
        if child.waiting_for:
            self.notify(f"{child.name}: its ports are free again; restarting it")
        child.waiting_for = ""
        child.restarts.append(now)
        child.state, child.started_at, child.next_check_at = State.STARTING, now, now
        try:
            child.process.start()
        except OSError as exc:
            self.notify(f"warning: {child.name} could not be started: {exc}")

    def _busy_ports(self, child: Supervised) -> str:
        """'' when every port is free; else why not. Kills what the killed server left holding one."""
        holders = self.find_holders(child.health.ports)
        reasons = []
        for h in holders:
            ours = h.pid is not None and child.process.session is not None
            ours = ours and child.process.session in (h.sid, h.pgid)
            if ours and h.pid is not None:
                self.kill_holder(h.pid)
                self.notify(
                    f"{child.name}: killed pid {h.pid} ({h.command}), left behind by the killed server "
                    f"and still holding port {h.port} ({h.name})"
                )
                reasons.append(f"port {h.port} ({h.name}) is being freed (pid {h.pid} killed)")
            else:
                reasons.append(f"port {h.port} ({h.name}) is {h.who}, not by this server")
        return "; ".join(reasons)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped"
    if returncode < 0:
        return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"
