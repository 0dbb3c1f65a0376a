"""Open-loop arrivals in Locust: requests leave on a seeded Poisson schedule at a set rate, whatever
the answers do, and each is timed from its *intended* send time (wrk2's and MLPerf LoadGen's rule;
closed-loop users would wait out a stall and hide it: coordinated omission).

A run is one ``contracts.RunSpec`` (the runner sets ``LOAD_SPEC``; by hand, ``LOAD_RATE`` etc.)::

    LOAD_RATE=800 LOAD_SEED=1 locust -f load_tests/generator/locustfile.py --headless -u 1 -t 20s OpenLoopTFServingUser

One user drives its share of the schedule, spawning a greenlet per request, so no user count caps
the load. With several users or processes (``-u N --processes N``, master/worker) the one schedule
is split by sequence number (schedule.share): together they send exactly the arrivals one process
would. Workers start on a common origin the master sends; the master judges stability over every
worker's rows and ends the run.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, NamedTuple

import gevent
import gevent.event
import gevent.pool
from locust import User, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from load_tests import stats
from load_tests.generator import recorder
from load_tests.generator.precise import sender
from load_tests.generator.schedule import PoissonSchedule, share

# Tuning constants.
CONNECTIONS = 256  # HTTP keep-alive connections per user: requests queue at the server, not for a socket
MAX_IN_FLIGHT = 4000  # beyond this the server is far past capacity: count a failure instead of sending
START_DELAY_S = 0.05  # a single process starts its schedule this long after the user does
ORIGIN_LEAD_S = 0.5  # the master sets the workers' common origin this far ahead (spawn messages, user start)
ORIGIN_WAIT_S = 10.0  # a worker that never hears the origin starts on its own after this
STABLE_CHECK_GRACE_S = 1.0  # a window is judged this long after its end (its slowest answers arrive)
DRAIN_S = 5.0  # after the schedule, wait this long for answers still in flight (later ones count as failed)
MARK_EVERY_S = 0.5  # how often the generator records its own CPU and the machine's (recorder.record_mark)
ORIGIN_MESSAGE = "load_origin"

_user_counter = itertools.count()
# Send lag is stamped when the request's last byte was handed to the kernel: the protocol's socket
# calls ``mark_written`` after each write (locustfile.py), for the greenlet sending it.
_written: dict[Any, float] = {}
_origin_wall = gevent.event.AsyncResult()  # on a worker: the master's common origin (time.time())
_finished = gevent.event.Event()  # this process's users have sent their whole schedule


class Answer(NamedTuple):
    """What one send learned: a correct answer, the server's batch size when it says (else 0), the
    HTTP status (0: none), and which backend answered a gateway request (contracts.VIA index)."""

    ok: bool
    batch: int = 0
    code: int = 0
    via: int = 0


class OpenLoopUser(User):
    """Drives its share of a Poisson schedule; subclasses implement ``send`` for one protocol."""

    abstract = True
    wait_time = constant(0)
    target_name = ""

    @task
    def drive(self) -> None:
        spec = recorder.SPEC
        runner = self.environment.runner
        users = max(1, int(getattr(self.environment.parsed_options, "num_users", 1) or 1))
        local = next(_user_counter)
        if isinstance(runner, WorkerRunner):  # one user per worker: the runner starts -u N --processes N
            part = max(0, runner.worker_index) + local * spec.processes
            origin = _worker_origin()
        else:
            part, origin = local, time.perf_counter() + START_DELAY_S
        parts = max(users, spec.processes)
        recorder.set_origin(origin, part)
        origin = recorder.recording().origin or origin
        wait = sender(spec.sender, spec.spin_us / 1e6)
        recorder.add_waiting_clock(lambda: wait.waiting_s)
        group = gevent.pool.Group()
        for seq, offset in share(PoissonSchedule(spec.rate, spec.seed), part % parts, parts):
            if spec.duration_s and offset >= spec.duration_s:
                break
            intended = origin + offset
            wait.until(intended)
            recorder.record_sent(self.target_name, seq, offset)
            if len(group) >= MAX_IN_FLIGHT:
                recorder.record_done(self.target_name, seq, offset, 0.0, float("inf"), ok=False)
                continue
            group.spawn(self._timed, seq, offset, intended)
        # The schedule is done: let the last answers arrive, then end the run ourselves (Locust's
        # --run-time counts from its own start, which would cut the last window short).
        group.join(timeout=DRAIN_S)
        wait.close()
        _finished.set()
        _quit(self.environment)
        raise StopUser  # never run the task again: a second schedule would reuse the sequence numbers

    def _timed(self, seq: int, offset: float, intended: float) -> None:
        started = time.perf_counter()
        me = gevent.getcurrent()
        _written[me] = 0.0
        answer = Answer(False)
        try:
            answer = self.send(intended, {"intended_s": offset})
        finally:
            done_ms = (time.perf_counter() - intended) * 1000
            written = _written.pop(me, 0.0)  # 0: never written (a failed connect): the lag at the start
            lag_ms = ((written or started) - intended) * 1000
            recorder.record_done(
                self.target_name, seq, offset, lag_ms, done_ms,
                ok=answer.ok, batch=answer.batch, code=answer.code, via=answer.via,
            )  # fmt: skip

    def send(self, intended: float, context: dict[str, Any]) -> Answer:
        """Send one request; fire Locust's request event with the time from ``intended``."""
        raise NotImplementedError


def mark_written() -> None:
    """The current greenlet's request has left (its bytes are in the kernel): stamp its send time."""
    me = gevent.getcurrent()
    if me in _written:
        _written[me] = time.perf_counter()


def _worker_origin() -> float:
    """The master's common origin as this process's perf_counter (CLOCK_MONOTONIC), via wall time."""
    try:
        wall = float(_origin_wall.get(timeout=ORIGIN_WAIT_S))
    except gevent.Timeout:
        return time.perf_counter() + START_DELAY_S
    return time.perf_counter() + (wall - time.time())


def _quit(environment: Environment) -> None:
    """End a single-process run (from its own greenlet: quit() kills the users, maybe the caller)."""
    if isinstance(environment.runner, LocalRunner):
        gevent.spawn(environment.runner.quit)


@events.init.add_listener
def _register(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):

        def on_origin(msg: Any, **_: Any) -> None:
            _origin_wall.set(msg.data["wall"])

        environment.runner.register_message(ORIGIN_MESSAGE, on_origin)
    elif isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("load_finished", lambda msg, **_: _finished_workers.add(msg.node_id))


_finished_workers: set[str] = set()


@events.test_start.add_listener
def _send_origin(environment: Environment, **_: Any) -> None:
    """Master: one origin for every worker, so their shares interleave as the one schedule."""
    if isinstance(environment.runner, MasterRunner):
        _finished_workers.clear()
        wall = time.time() + ORIGIN_LEAD_S
        recorder.set_origin(time.perf_counter() + ORIGIN_LEAD_S, 0)
        environment.runner.send_message(ORIGIN_MESSAGE, {"wall": wall})


@events.test_start.add_listener
def _marks(environment: Environment, **_: Any) -> None:
    """The generator's own CPU and the machine's, sampled through the run, so the guard can take
    exactly the measured windows (not Locust's start-up). A worker also tells the master when it
    has sent its whole schedule."""
    if isinstance(environment.runner, MasterRunner):
        return

    def loop() -> None:
        told = False
        while True:
            recorder.record_mark()
            if _finished.is_set() and not told and isinstance(environment.runner, WorkerRunner):
                environment.runner.send_message("load_finished", None)
                told = True
            gevent.sleep(MARK_EVERY_S)

    gevent.spawn(loop)


@events.test_start.add_listener
def _stop_when_done(environment: Environment, **_: Any) -> None:
    """In a single process or on the master: quit once the last windows are stable (when windows are
    set), or once every worker has sent its schedule; Locust's -t stays the cap."""
    spec = recorder.SPEC
    runner = environment.runner
    if (
        runner is None
        or isinstance(runner, WorkerRunner)
        or not (spec.window_s > 0 or isinstance(runner, MasterRunner))
    ):
        return

    def watch() -> None:
        checked = 0
        while True:
            gevent.sleep(0.25)
            workers = max(spec.processes, len(runner.clients.all)) if isinstance(runner, MasterRunner) else 0
            if workers and len(_finished_workers) >= workers:
                gevent.sleep(recorder.locust.runners.WORKER_REPORT_INTERVAL + 0.5)  # their last rows
                runner.quit()
                return
            origin = recorder.recording().origin
            data = recorder.open_loop_arrays()
            if spec.window_s <= 0 or origin is None or data is None:
                continue
            t, ms, ok = data
            elapsed = time.perf_counter() - origin
            lag_s = recorder.locust.runners.WORKER_REPORT_INTERVAL if isinstance(runner, MasterRunner) else 0.0
            whole = int((elapsed - STABLE_CHECK_GRACE_S - lag_s - spec.warmup_s) // spec.window_s)
            if whole <= checked:
                continue
            checked = whole
            windows = stats.split_windows(t, ms, ok, spec.warmup_s, spec.window_s)[:whole]
            if stats.stable(windows):
                if isinstance(runner, MasterRunner):
                    runner.quit()
                else:
                    _quit(environment)
                return

    gevent.spawn(watch)
