"""The batcher's rule, in-process with a gated model: which requests share which forward pass.

The model blocks until the test releases it, so "a pass is running" is a state the test holds, not a
timing; the delay is long enough (or the batch full) that no timer decides anything unless said.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest

from load_tests.servers.floor_batching import Batcher, inline
from mnist_serving.spec import INPUT_DIM

T = TypeVar("T")
SCENARIO_TIMEOUT_S = 10.0


class GatedModel:
    """Row i of every pass answers [its first value] * 10; each pass waits for ``release``."""

    def __init__(self) -> None:
        self.passes: list[list[float]] = []  # each pass's first values, in order
        self.gate = threading.Semaphore(0)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.gate.acquire()
        self.passes.append(rows[:, 0].tolist())
        return np.repeat(rows[:, :1], 10, axis=1)

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.release()


@pytest.fixture
def model() -> Iterator[GatedModel]:
    gated = GatedModel()
    yield gated
    gated.release(1000)  # a failed scenario must not leave a compute thread blocked (exit would hang)


def rows(*values: float) -> np.ndarray:
    out = np.zeros((len(values), INPUT_DIM), np.float32)
    out[:, 0] = values
    return out


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """The scenario, failing (not hanging) if an answer never comes."""
    return asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT_S))


async def settle() -> None:
    """Let the event loop run what is ready (queueing, timers due now); the compute thread may lag."""
    for _ in range(5):
        await asyncio.sleep(0.01)


async def passes(model: GatedModel, n: int) -> list[list[float]]:
    """The model's passes once it has run ``n`` (the compute thread's pace is not the test's)."""
    while len(model.passes) < n:
        await asyncio.sleep(0.005)
    await settle()
    return model.passes


def test_a_full_batch_runs_at_once_and_the_next_fills_while_it_runs(model: GatedModel) -> None:
    batcher = Batcher(model, size=4, delay_s=30.0, split=False)

    async def scenario() -> list[tuple[np.ndarray, int]]:
        first = [asyncio.ensure_future(batcher(rows(v))) for v in (1, 2, 3, 4)]  # full: runs at once
        await settle()
        # While pass 1 runs: 3 one-row requests, then a 2-row one that does not fit beside them.
        later = [asyncio.ensure_future(batcher(x)) for x in (rows(5), rows(6), rows(7), rows(8, 9))]
        await settle()
        assert model.passes == [] and all(not f.done() for f in first + later)
        model.release(2)  # pass 1 ends; 5 rows wait (>= 4): the next pass takes 5, 6, 7 whole, not 8-9
        assert await passes(model, 2) == [[1, 2, 3, 4], [5, 6, 7]]
        # 8-9 waits alone (2 < 4 rows) for its delay; a 3-row request fills the queue to 5 >= 4,
        # so 8-9 runs now, and the 3 rows do not fit beside it: they wait for the next pass, which
        # one more row fills.
        last = [asyncio.ensure_future(batcher(rows(10, 11, 12)))]
        model.release(2)
        assert (await passes(model, 3))[2:] == [[8, 9]]
        last.append(asyncio.ensure_future(batcher(rows(13))))
        return [await f for f in (*first, *later, *last)]

    answers = run(scenario())
    batcher.close()
    assert model.passes == [[1, 2, 3, 4], [5, 6, 7], [8, 9], [10, 11, 12, 13]]
    assert [n for _, n in answers] == [4, 4, 4, 4, 3, 3, 3, 1, 2, 2]
    firsts = [a[:, 0].tolist() for a, _ in answers]  # each request got its own rows' answers
    assert firsts == [[1], [2], [3], [4], [5], [6], [7], [8, 9], [10, 11, 12], [13]]


def test_a_batch_whose_delay_passes_during_a_pass_keeps_filling_until_the_thread_is_free(model: GatedModel) -> None:
    """As in both servers: a due batch is not sealed while the compute thread is busy."""
    batcher = Batcher(model, size=4, delay_s=0.02, split=False)

    async def scenario() -> list[int]:
        a = asyncio.ensure_future(batcher(rows(1)))
        await asyncio.sleep(0.1)  # its delay passes: pass [1] starts, and blocks
        b = asyncio.ensure_future(batcher(rows(2)))
        await asyncio.sleep(0.1)  # b's delay passes while the thread is busy
        c = asyncio.ensure_future(batcher(rows(3)))
        await settle()
        model.release(2)
        return [(await f)[1] for f in (a, b, c)]

    assert run(scenario()) == [1, 2, 2]
    batcher.close()
    assert model.passes == [[1], [2, 3]]


def test_a_lone_request_runs_after_the_delay_and_large_ones_run_alone(model: GatedModel) -> None:
    model.release(100)  # never blocks here
    split = Batcher(model, size=4, delay_s=0.05, split=True)
    whole = Batcher(model, size=4, delay_s=0.05, split=False)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        probs, n = await split(rows(1))
        assert n == 1 and probs[:, 0].tolist() == [1] and loop.time() - start >= 0.049
        big = list(range(10, 16))
        probs, n = await split(rows(*big))  # 6 > 4 rows: alone, in passes of 4 and 2 (TF Serving's splitting)
        assert n == 1 and probs[:, 0].tolist() == big
        probs, n = await whole(rows(*big))  # alone, whole (TorchServe)
        assert n == 1 and probs[:, 0].tolist() == big

    run(scenario())
    split.close()
    whole.close()
    assert model.passes == [[1], [10, 11, 12, 13], [14, 15], [10, 11, 12, 13, 14, 15]]


def test_a_failing_model_fails_its_pass_only() -> None:
    calls = []

    def model(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.zeros((len(x), 10), np.float32)

    batcher = Batcher(model, size=2, delay_s=0.0, split=False)

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher(rows(1))
        probs, n = await batcher(rows(2))
        assert probs.shape == (1, 10) and n == 1

    run(scenario())
    batcher.close()


def test_the_plain_floor_computes_inline_and_reports_no_batch() -> None:
    infer = inline(lambda x: x[:, :10] * 2)

    async def call() -> tuple[np.ndarray, int]:
        return await infer(rows(3))

    probs, n = run(call())
    assert n == 0 and probs[0, 0] == 6
