"""The batching floor's batcher: requests queued on the event loop, forward passes on one thread.

The rule is the servers' (TF Serving's ``max_execution_batch_size`` / ``batch_timeout_micros``,
TorchServe's ``batchSize`` / ``maxBatchDelay``): requests queue in arrival order; the compute thread,
whenever it is free, takes the oldest requests, whole, up to ``size`` rows, as soon as that many rows
wait or the oldest has waited ``delay_s``. While a pass runs the queue keeps filling, so under load
batches grow towards ``size`` as the servers' do (a batch is not sealed before the thread can take it).
A request that does not fit beside the ones taken waits for the next pass; one larger than ``size``
runs alone (split into ``size``-row passes when ``split``, else whole).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from mnist_serving.spec import INPUT_DIM

Predict = Callable[[np.ndarray], np.ndarray]
# rows -> (probabilities, requests that shared the forward pass; 0: not batching, nothing to report)
Infer = Callable[[np.ndarray], Awaitable[tuple[np.ndarray, int]]]
_Job = tuple[np.ndarray, "asyncio.Future[tuple[np.ndarray, int]]", float]  # rows, answer, arrival (loop time)


def inline(predict: Predict) -> Infer:
    """No batching: each request's pass runs on the event loop's own thread (the plain floor)."""

    async def infer(rows: np.ndarray) -> tuple[np.ndarray, int]:
        return predict(rows), 0

    return infer


class Batcher:
    """``await batcher(rows)`` -> (this request's probabilities, requests in its forward pass).

    All state is touched on the event loop's thread only; the executor thread only computes.
    """

    def __init__(self, predict: Predict, size: int, delay_s: float, split: bool):
        if size < 1 or delay_s < 0:
            raise ValueError(f"batch size must be >= 1 and delay >= 0; got {size}, {delay_s}")
        self._predict, self.size, self.delay_s, self._split = predict, size, delay_s, split
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="floor-compute")
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._busy = False  # a pass is running (at most one: one compute thread, as the servers here)
        self._timer: asyncio.TimerHandle | None = None

    def warm(self, sizes: Iterable[int]) -> None:
        """Run each pass size a few times on the compute thread itself, before serving."""

        def run() -> None:
            for n in sizes:
                for _ in range(3):
                    self._compute([np.zeros((n, INPUT_DIM), np.float32)])

        self._executor.submit(run).result()

    async def __call__(self, rows: np.ndarray) -> tuple[np.ndarray, int]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[np.ndarray, int]] = loop.create_future()
        self._queue.append((rows, answer, loop.time()))
        self._queued_rows += len(rows)
        self._pump(loop)
        return await answer

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a pass if the thread is free and a batch is due; else arm the oldest request's timer."""
        if self._busy or not self._queue:
            return
        due = self._queue[0][2] + self.delay_s
        if self._queued_rows < self.size and loop.time() < due:
            if self._timer is None:
                self._timer = loop.call_at(due, self._on_timer, loop)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs = [self._queue.popleft()]
        rows = len(jobs[0][0])
        while self._queue and rows + len(self._queue[0][0]) <= self.size:
            jobs.append(self._queue.popleft())
            rows += len(jobs[-1][0])
        self._queued_rows -= rows
        self._busy = True
        running = loop.run_in_executor(self._executor, self._compute, [job[0] for job in jobs])
        running.add_done_callback(partial(self._done, loop, jobs))

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._pump(loop)

    def _compute(self, parts: list[np.ndarray]) -> np.ndarray:
        rows = parts[0] if len(parts) == 1 else np.concatenate(parts)  # the one copy batching needs
        if self._split and len(rows) > self.size:
            return np.concatenate([self._predict(rows[i : i + self.size]) for i in range(0, len(rows), self.size)])
        return self._predict(rows)

    def _done(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], running: asyncio.Future[np.ndarray]) -> None:
        self._busy = False
        error = running.exception()
        offset = 0
        for rows, answer, _ in jobs:
            if answer.done():  # its caller went away (a cancelled RPC): computed, not delivered
                pass
            elif error is not None:
                answer.set_exception(error)
            else:
                answer.set_result((running.result()[offset : offset + len(rows)], len(jobs)))  # views, no copy
            offset += len(rows)
        self._pump(loop)
