"""Server-side batching with TF Serving's semantics: a task waits at most ``batch_timeout_micros``
for its batch to fill to ``max_batch_size`` rows; ``num_batch_threads`` batches run at once;
a full queue is UNAVAILABLE and an oversized task INVALID_ARGUMENT."""

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
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._queue[0].enqueued + timeout
            while self._queued_rows < self._params.max_batch_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch, rows = [], 0
            while self._queue and rows + self._queue[0].rows <= self._params.max_batch_size:
                task = self._queue.popleft()
                batch.append(task)
                rows += task.rows
            self._queued_rows -= rows
            await self._slots.acquire()
            asyncio.get_running_loop().create_task(self._execute(batch))

    async def _execute(self, batch: list[_Task]) -> None:
        try:
            start = time.perf_counter()
            for t in batch:
                metrics.queuing_latency.labels(POOL).observe((start - t.enqueued) * 1e6)
            merged = {k: np.concatenate([t.inputs[k] for t in batch]) for k in batch[0].inputs}
            metrics.batch_size.labels(POOL).observe(sum(t.rows for t in batch))
            loop = asyncio.get_running_loop()
            try:
                run_start = time.perf_counter()
                outputs = await loop.run_in_executor(self._executor, self._run, merged)
                run_us = (time.perf_counter() - run_start) * 1e6
                for _ in batch:  # per request, as the real server counts it
                    metrics.runtime_latency.labels(self._model, "predict", "TF1").observe(run_us)
            except Exception as exc:  # one failed run fails every task in it, as in the real server
                for t in batch:
                    if not t.future.done():
                        t.future.set_exception(exc)
                return
            offset = 0
            for t in batch:
                if not t.future.done():
                    t.future.set_result({k: v[offset : offset + t.rows] for k, v in outputs.items()})
                offset += t.rows
        finally:
            self._slots.release()

    def close(self) -> None:
        self._loop_task.cancel()
