"""Keep the native stack up: restart a crashed server with exponential backoff, as systemd,
supervisord, Docker and Kubernetes do, and leave its neighbours alone.

A process that exits is restarted after ``initial_backoff_s``, doubling up to ``max_backoff_s``.
More than ``max_restarts`` restarts within ``window_s`` is a crash loop: the process stays down and
the supervisor says so. A process that stays up for ``window_s`` has its backoff reset.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from serving.native.process import ManagedProcess

Notify = Callable[[str], None]


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_restarts: int = 5  # within window_s; one more crash and the process stays down
    window_s: float = 120.0

    def backoff(self, restarts_so_far: int) -> float:
        return min(self.max_backoff_s, self.initial_backoff_s * 2**restarts_so_far)


class State(Enum):
    STARTING = "starting"  # (re)started, not yet ready
    READY = "ready"
    BACKOFF = "backoff"  # exited; waiting to restart
    FAILED = "failed"  # crash loop: left down


@dataclass
class Supervised:
    process: ManagedProcess
    ready: Callable[[], bool]
    state: State = State.READY
    restarts: list[float] = field(default_factory=list)  # monotonic times of recent restarts
    restart_at: float = 0.0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.process.name


class Supervisor:
    """Call ``tick()`` periodically; it never blocks longer than one readiness probe."""

    def __init__(self, policy: RestartPolicy | None = None, notify: Notify = print):
        self.policy = policy or RestartPolicy()
        self.notify = notify
        self.children: dict[str, Supervised] = {}

    def watch(self, process: ManagedProcess, ready: Callable[[], bool]) -> None:
        """Supervise a process that is already started and ready."""
        self.children[process.name] = Supervised(process, ready)

    def states(self) -> dict[str, State]:
        return {name: child.state for name, child in self.children.items()}

    def tick(self, now: float | None = None) -> None:
        for child in self.children.values():
            self._step(child, time.monotonic() if now is None else now)

    def _step(self, child: Supervised, now: float) -> None:
        p = self.policy
        if child.state in (State.READY, State.STARTING) and not child.process.alive:
            child.restarts = [t for t in child.restarts if now - t < p.window_s]
            what = describe_exit(child.process.returncode)
            if len(child.restarts) >= p.max_restarts:
                child.state = State.FAILED
                child.process.stop()  # reap anything it left behind (TorchServe workers)
                self.notify(
                    f"error: {child.name} {what} after {len(child.restarts)} restarts in {p.window_s:.0f} s: "
                    f"crash loop, leaving it down; see {child.process.log_path}"
                )
                return
            delay = p.backoff(len(child.restarts))
            child.state, child.restart_at = State.BACKOFF, now + delay
            child.process.stop()
            self.notify(
                f"warning: {child.name} {what}; restarting in {delay:.1f} s "
                f"(restart {len(child.restarts) + 1} of at most {p.max_restarts} in {p.window_s:.0f} s)"
            )
        elif child.state is State.BACKOFF and now >= child.restart_at:
            child.restarts.append(now)
            child.state, child.started_at = State.STARTING, now
            try:
                child.process.start()
            except OSError as exc:
                self.notify(f"warning: {child.name} could not be started: {exc}")
        elif child.state is State.STARTING:
            ok = False
            with contextlib.suppress(Exception):
                ok = child.ready()
            if ok:
                child.state = State.READY
                self.notify(f"{child.name} is ready again after {now - child.started_at:.1f} s")
        elif child.state is State.READY and child.restarts and now - child.restarts[-1] >= p.window_s:
            child.restarts.clear()  # stable again: the next crash starts from the shortest backoff


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped"
    if returncode < 0:
        return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"
