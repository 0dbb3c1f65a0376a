"""A small open-loop client for rollout tests: Poisson arrivals at a fixed rate through the gateway,
each request sent at its intended time whatever the others do, every answer recorded (status and
the ``model_version`` that computed it)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np
import orjson


@dataclass(frozen=True)
class Answer:
    sent: float  # intended send time, Unix seconds (to line up with a rollout log's steps)
    backend: str
    status: int  # 0: no HTTP answer
    version: str | None
    latency_s: float  # from the intended send time
    answered: float  # when the answer came, Unix seconds
    error: str = ""


class OpenLoad:
    def __init__(self, url: str, rate: float, backends: tuple[str, ...], row: np.ndarray, seed: int = 0):
        self.url, self.rate, self.backends = url, rate, backends
        self._body = orjson.dumps({"instances": [row.tolist()]})
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._answers: list[Answer] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="open-loop", daemon=True)

    def start(self) -> OpenLoad:
        self._thread.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        self._thread.join(timeout=60)
        return sorted(self._answers, key=lambda a: a.sent)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=self.url, timeout=10, limits=limits) as client:
            mono0, wall0 = time.monotonic(), time.time()
            due, i, tasks = mono0, 0, set()
            while not self._stop.is_set():
                due += float(self._rng.exponential(1 / self.rate))
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                backend = self.backends[i % len(self.backends)]
                i += 1
                task = asyncio.create_task(self._send(client, backend, due, wall0 + (due - mono0)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)

    async def _send(self, client: httpx.AsyncClient, backend: str, due: float, sent: float) -> None:
        headers = {"Content-Type": "application/json"}
        try:
            r = await client.post(f"/v1/predict?backend={backend}", content=self._body, headers=headers)
            version = r.json().get("model_version") if r.status_code == 200 else None
            error = "" if r.status_code == 200 else r.text[:200]
            answer = Answer(sent, backend, r.status_code, version, time.monotonic() - due, time.time(), error)
        except httpx.HTTPError as exc:
            why = f"{type(exc).__name__}: {exc}"
            answer = Answer(sent, backend, 0, None, time.monotonic() - due, time.time(), why)
        self._answers.append(answer)
