"""Server-side batching with TF Serving's semantics: a task waits at most ``batch_timeout_micros``
for its batch to fill; ``num_batch_threads`` batches run at once; a full queue is UNAVAILABLE and
a task over ``max_batch_size`` rows INVALID_ARGUMENT. With ``enable_large_batch_splitting`` a task
that does not fit the open batch is split: its head fills that batch, the rest goes to the next
ones (each at most ``max_execution_batch_size`` rows), and its outputs are reassembled in order."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import grpc
import numpy as np

from serving.tfserving_standin import metrics
from serving.tfserving_standin.configs import Batching
from serving.tfserving_standin.errors import ServingError, invalid

Tensors = dict[str, np.ndarray]
POOL = "batch_threads"


@dataclass
class _Task:
    inputs: Tensors
    rows: int
    future: asyncio.Future[Tensors]
    enqueued: float = field(default_factory=time.perf_counter)
    taken: int = 0  # rows already placed in a batch
    done: int = 0  # rows whose outputs are back
    parts: list[tuple[int, Tensors]] = field(default_factory=list)  # (first row, outputs)

    def complete(self, start: int, outputs: Tensors) -> None:
        self.parts.append((start, outputs))
        self.done += len(next(iter(outputs.values())))
        if self.done == self.rows and not self.future.done():
            if len(self.parts) == 1:
                self.future.set_result(outputs)
            else:
                ordered = [o for _, o in sorted(self.parts, key=lambda p: p[0])]
                self.future.set_result({k: np.concatenate([o[k] for o in ordered]) for k in ordered[0]})


@dataclass(frozen=True)
class _Piece:
    task: _Task
    start: int
    stop: int


class Batcher:
    def __init__(self, run: Callable[[Tensors], Tensors], params: Batching, executor: Executor, model: str):
        self._run = run
        self._model = model
        self._params = params
        self._executor = executor
        self._queue: deque[_Task] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(params.num_batch_threads)
        self._loop_task = asyncio.get_running_loop().create_task(self._collect())

    async def submit(self, inputs: Tensors) -> Tensors:
        rows = len(next(iter(inputs.values())))
        if rows > self._params.max_batch_size:
            raise invalid(f"Task size {rows} is larger than maximum input batch size {self._params.max_batch_size}")
        if self._queued_rows + rows > self._params.max_enqueued_rows:
            raise ServingError(
                grpc.StatusCode.UNAVAILABLE,
                "The batch scheduling queue to which this session run belongs is full",
            )
        task = _Task(inputs, rows, asyncio.get_running_loop().create_future())
        self._queue.append(task)
        self._queued_rows += rows
        self._wakeup.set()
        return await task.future

    async def _collect(self) -> None:
        timeout = self._params.batch_timeout_micros / 1e6
        capacity = self._params.execution_batch_size
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._queue[0].enqueued + timeout
            while self._queued_rows < capacity:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take(capacity)
            self._queued_rows -= sum(p.stop - p.start for p in batch)
            await self._slots.acquire()
            asyncio.get_running_loop().create_task(self._execute(batch))

    def _take(self, capacity: int) -> list[_Piece]:
        """Fill one batch from the queue's head, splitting the last task when that is allowed."""
        batch: list[_Piece] = []
        rows = 0
        while self._queue and rows < capacity:
            task = self._queue[0]
            left = task.rows - task.taken
            take = min(left, capacity - rows)
            if take < left and not self._params.enable_large_batch_splitting:
                break  # it waits for the next batch whole
            batch.append(_Piece(task, task.taken, task.taken + take))
            task.taken += take
            rows += take
            if task.taken == task.rows:
                self._queue.popleft()
        return batch

    async def _execute(self, batch: list[_Piece]) -> None:
        try:
            start = time.perf_counter()
            for p in batch:
                if p.start == 0:  # queueing is counted once per task, from arrival to its first run
                    metrics.queuing_latency.labels(POOL).observe((start - p.task.enqueued) * 1e6)
            names = list(batch[0].task.inputs)
            merged = {k: np.concatenate([p.task.inputs[k][p.start : p.stop] for p in batch]) for k in names}
            metrics.batch_size.labels(POOL).observe(sum(p.stop - p.start for p in batch))
            loop = asyncio.get_running_loop()
            try:
                run_start = time.perf_counter()
                outputs = await loop.run_in_executor(self._executor, self._run, merged)
                run_us = (time.perf_counter() - run_start) * 1e6
                for _ in batch:  # per request, as the real server counts it
                    metrics.runtime_latency.labels(self._model, "predict", "TF1").observe(run_us)
            except Exception as exc:  # one failed run fails every task in it, as in the real server
                for p in batch:
                    if not p.task.future.done():
                        p.task.future.set_exception(exc)
                return
            offset = 0
            for p in batch:
                n = p.stop - p.start
                p.task.complete(p.start, {k: v[offset : offset + n] for k, v in outputs.items()})
                offset += n
        finally:
            self._slots.release()

    def close(self) -> None:
        self._loop_task.cancel()
