"""Sending at the intended time to within tens of microseconds, inside gevent, without burning a core.

gevent's timers wake in whole milliseconds (libev hands epoll a timeout in milliseconds and rounds
it up), so a plain ``gevent.sleep`` sends ~0.5 ms late at p50 and 1-2 ms at p99. Two precise waits:

- ``TimerfdWait`` (the default, Linux): one kernel timerfd per sender, armed at the intended time
  (CLOCK_MONOTONIC, absolute: ``time.perf_counter``'s clock) and watched by the gevent loop like a
  socket. The loop sleeps in epoll until the timer fires (a high-resolution timer, not epoll's
  millisecond timeout), and every other greenlet runs meanwhile; nothing spins, so the generator's
  CPU is its work. The thread's timer slack is lowered to 1 µs (prctl) for epoll's own timeouts.
- ``PreciseWait`` (``sender="spin"``): a gevent timer to ``spin_s`` before the intended time, then a
  cooperative spin (``gevent.sleep(0)``: answers are still read). It burns CPU while it waits; the
  time spent is counted apart (``waiting_s``).

Neither ever returns early. What neither can fix: a send time that arrives while another greenlet
is reading an answer waits until that greenlet yields (cooperative scheduling).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import time

import gevent
from gevent.hub import get_hub

# A spin iteration shorter than this did nothing but poll the loop (gevent.sleep(0) with nothing
# ready takes a few µs here): its time is waiting, not work.
IDLE_ITERATION_S = 25e-6
# Linux constants (timerfd_create(2), prctl(2)).
CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
PR_SET_TIMERSLACK = 29
TIMER_SLACK_NS = 1000


class PreciseWait:
    """The cooperative spin: a gevent timer to ``spin_s`` before the intended time, then spin."""

    def __init__(self, spin_s: float):
        self.spin_s = max(0.0, spin_s)
        self.waiting_s = 0.0  # wall seconds spent spinning with nothing else to do

    def until(self, intended: float) -> None:
        """Return at ``intended`` (``time.perf_counter``) or as soon after it as the machine allows."""
        clock = time.perf_counter
        now = clock()
        if intended - now > self.spin_s:
            gevent.sleep(intended - now - self.spin_s)
            now = clock()
        if self.spin_s <= 0:  # timer only: sleep out the rest (whole milliseconds)
            while now < intended:
                gevent.sleep(intended - now)
                now = clock()
            return
        waiting = 0.0
        while now < intended:
            gevent.sleep(0)
            after = clock()
            if after - now < IDLE_ITERATION_S:
                waiting += after - now
            now = after
        self.waiting_s += waiting

    def close(self) -> None:
        pass


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def timerfd_available() -> bool:
    try:
        return hasattr(_libc(), "timerfd_create") and time.get_clock_info("perf_counter").implementation.endswith(
            "(CLOCK_MONOTONIC)"
        )
    except OSError:
        return False


class TimerfdWait:
    """A kernel timer per sender, watched by the gevent loop: precise, and no CPU while waiting."""

    def __init__(self, lead_s: float = 0.0) -> None:
        self.lead_s = max(0.0, lead_s)  # arm this early, then finish with a cooperative spin
        self.waiting_s = 0.0
        libc = _libc()
        libc.prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0)  # best effort: epoll's own timeouts
        self._fd = libc.timerfd_create(CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self._settime = libc.timerfd_settime
        self._spec = _Itimerspec()
        self._ref = ctypes.byref(self._spec)
        self._hub = get_hub()
        self._watcher = self._hub.loop.io(self._fd, 1)  # readable when the timer has fired

    def until(self, intended: float) -> None:
        """Return at ``intended`` (``time.perf_counter``) or as soon after it as the machine allows."""
        clock = time.perf_counter
        if clock() >= intended:
            return
        wake = intended - self.lead_s
        sec = int(wake)
        self._spec.it_value.tv_sec = sec
        self._spec.it_value.tv_nsec = int((wake - sec) * 1e9)
        if self._settime(self._fd, TFD_TIMER_ABSTIME, self._ref, None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime")
        self._hub.wait(self._watcher)
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)  # the expiry count: clears readability
        now = clock()
        waiting = 0.0
        while now < intended:  # the lead, if any (and never early: a clock rounding of a nanosecond)
            gevent.sleep(0)
            after = clock()
            if after - now < IDLE_ITERATION_S:
                waiting += after - now
            now = after
        self.waiting_s += waiting

    def close(self) -> None:
        self._watcher.close()
        os.close(self._fd)


def sender(kind: str, spin_s: float) -> PreciseWait | TimerfdWait:
    """The wait a run asked for (``RunSpec.sender``); ``timerfd`` falls back to the spin where the
    kernel has no timerfd (not Linux)."""
    if kind == "timerfd" and timerfd_available():
        return TimerfdWait()
    if kind == "timer":
        return PreciseWait(0.0)
    return PreciseWait(spin_s)
