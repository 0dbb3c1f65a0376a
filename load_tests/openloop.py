"""Open-loop arrivals in Locust: requests leave on a seeded Poisson schedule at a set rate, whatever
the answers do, and each is timed from its *intended* send time (wrk2's and MLPerf LoadGen's rule;
closed-loop users would wait out a stall and hide it: coordinated omission).

One user drives the whole rate of its process, spawning a greenlet per request, so no user count
caps the load. Settings come from env vars (the capacity runner sets them)::

    LOAD_RATE=800 LOAD_SEED=1 locust -f load_tests/locustfile.py --headless -u 1 -t 20s OpenLoopTFServingUser

With several users (or ``--master``/``--worker`` processes) the rate is split evenly between users,
each with its own seed, and the superposition is again Poisson at ``LOAD_RATE``.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.pool
from locust import User, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import LocalRunner

from load_tests import stats, timing
from load_tests.schedule import PoissonSchedule, user_seed

# Tuning constants.
CONNECTIONS = 256  # HTTP keep-alive connections per user: requests queue at the server, not for a socket
MAX_IN_FLIGHT = 4000  # beyond this the server is far past capacity: count a failure instead of sending
START_DELAY_S = 0.05  # the schedule starts this long after the user does (imports, connection setup)
STABLE_CHECK_GRACE_S = 1.0  # a window is judged this long after its end (its slowest answers arrive)
DRAIN_S = 5.0  # after the schedule, wait this long for answers still in flight (later ones count as failed)
MARK_EVERY_S = 0.5  # how often the generator records its own CPU and the machine's (timing.record_mark)


@dataclass(frozen=True)
class Settings:
    rate: float  # requests per second, all users of all processes together
    seed: int
    window_s: float  # stability windows (0: run to Locust's --run-time, no early stop)
    warmup_s: float  # intended-time seconds excluded before the first window
    slo_ms: float  # only for the record in the results
    duration_s: float  # intended-time seconds to send for (0: until Locust's --run-time)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            rate=float(os.environ.get("LOAD_RATE", "100")),
            seed=int(os.environ.get("LOAD_SEED", "1")),
            window_s=float(os.environ.get("LOAD_WINDOW_S", "0")),
            warmup_s=float(os.environ.get("LOAD_WARMUP_S", "0")),
            slo_ms=float(os.environ.get("LOAD_SLO_MS", "10")),
            duration_s=float(os.environ.get("LOAD_DURATION_S", "0")),
        )


_user_counter = itertools.count()


class OpenLoopUser(User):
    """Drives a Poisson schedule; subclasses implement ``send`` for one protocol."""

    abstract = True
    wait_time = constant(0)
    target_name = ""

    @task
    def drive(self) -> None:
        s = Settings.from_env()
        opts = self.environment.parsed_options
        users = max(1, int(getattr(opts, "num_users", 1) or 1))
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        schedule = PoissonSchedule(s.rate / users, user_seed(s.seed, worker, next(_user_counter)))
        group = gevent.pool.Group()
        origin = time.perf_counter() + START_DELAY_S
        timing.open_loop_started(origin)
        for seq, offset in enumerate(schedule):
            if s.duration_s and offset >= s.duration_s:
                break
            intended = origin + offset
            wait_until(intended)
            timing.record_sent(self.target_name, offset)
            if len(group) >= MAX_IN_FLIGHT:
                timing.record_done(self.target_name, seq, offset, 0.0, float("inf"), ok=False)
                continue
            group.spawn(self._timed, seq, offset, intended)
        # The schedule is done: let the last answers arrive, then end the run ourselves (Locust's
        # --run-time counts from its own start, which would cut the last window short).
        group.join(timeout=DRAIN_S)
        _quit(self.environment)
        raise StopUser  # never run the task again: a second schedule would reuse the sequence numbers

    def _timed(self, seq: int, offset: float, intended: float) -> None:
        lag_ms = (time.perf_counter() - intended) * 1000
        ok, batch = False, 0
        try:
            ok, batch = self.send(intended, {"intended_s": offset, "lag_ms": lag_ms})
        finally:
            done_ms = (time.perf_counter() - intended) * 1000
            timing.record_done(self.target_name, seq, offset, lag_ms, done_ms, ok=ok, batch=batch)

    def send(self, intended: float, context: dict[str, Any]) -> tuple[bool, int]:
        """Send one request; fire Locust's request event with the time from ``intended``.
        Returns (correct answer, rows in the server's batch when it says so, else 0)."""
        raise NotImplementedError


def wait_until(intended: float) -> None:
    """Sleep until ``intended`` (perf_counter). gevent's timers wake in whole milliseconds (libev
    rounds epoll's timeout up), so the send lag is ~0.7 ms at p50 by construction; it is recorded,
    and counted in the latency. (Sleeping the last millisecond in a native thread cut the p50 to
    ~0.3 ms but not the p99, which this machine's scheduling sets, and cost 5-10 % of a core.)"""
    delay = intended - time.perf_counter()
    if delay > 0:
        gevent.sleep(delay)


def _quit(environment: Environment) -> None:
    """End a single-process run (from its own greenlet: quit() kills the users, maybe the caller)."""
    if isinstance(environment.runner, LocalRunner):
        gevent.spawn(environment.runner.quit)


@events.test_start.add_listener
def _marks(**_: Any) -> None:
    """The generator's own CPU and the machine's, sampled through the run, so the guard can take
    exactly the measured windows (not Locust's start-up)."""

    def loop() -> None:
        while True:
            timing.record_mark()
            gevent.sleep(MARK_EVERY_S)

    gevent.spawn(loop)


@events.test_start.add_listener
def _stop_when_stable(environment: Environment, **_: Any) -> None:
    """In a single-process run with windows set, quit once the last windows are stable (or the
    run time ends: Locust's -t is the cap). Distributed runs always use the full run time."""
    s = Settings.from_env()
    if s.window_s <= 0 or not isinstance(environment.runner, LocalRunner):
        return

    def watch() -> None:
        checked = 0
        while True:
            gevent.sleep(0.25)
            data = timing.open_loop_arrays()
            if data is None:
                continue
            origin, t, ms, ok = data
            elapsed = time.perf_counter() - origin
            whole = int((elapsed - STABLE_CHECK_GRACE_S - s.warmup_s) // s.window_s)
            if whole <= checked:
                continue
            checked = whole
            windows = stats.split_windows(t, ms, ok, s.warmup_s, s.window_s)[:whole]
            if stats.stable(windows):
                _quit(environment)
                return

    gevent.spawn(watch)
