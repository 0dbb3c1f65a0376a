"""Sending at the intended time to within tens of microseconds, inside gevent.

gevent's timers wake in whole milliseconds (libev rounds epoll's timeout up), so a plain
``gevent.sleep`` sends ~0.5 ms late at p50 and 1-2 ms at p99. The wait is therefore done in two parts:
a timer to ``spin_s`` before the intended time, then a cooperative spin: ``gevent.sleep(0)`` lets every
other greenlet run (answers are read while we wait) and returns to check the clock. It never returns
early. What the spin costs is counted apart (``waiting_s``), so the generator guard can judge the
generator's real work: spin iterations in which no other greenlet ran count as waiting.
"""

from __future__ import annotations

import time

import gevent

# A spin iteration shorter than this did nothing but poll the loop (gevent.sleep(0) with nothing
# ready takes a few µs here): its time is waiting, not work.
IDLE_ITERATION_S = 25e-6


class PreciseWait:
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
