"""Locust users, one class per target (see targets.py). FastHttpUser: HttpUser's own CPU cost
under-reports servers on small machines.

    locust -f load_tests/locustfile.py --headless -u 8 -r 8 -t 30s TFServingUser
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `locust -f` finds the packages

from load_tests import checks, payloads, timing  # noqa: F401  (timing installs the hooks)
from load_tests.targets import TARGETS, Target

HEADERS = {"Content-Type": "application/json"}


def _make_user(target: Target) -> type[FastHttpUser]:
    class TargetUser(FastHttpUser):
        host = os.environ.get(target.host_env, target.default_host)
        wait_time = constant(0)  # closed loop: the next request leaves when the answer arrives
        abstract = False

        def on_start(self) -> None:
            # Each user walks the digits from its own offset, so concurrent users send different rows.
            start = id(self) % len(payloads.json_bodies())
            self._bodies = itertools.islice(itertools.cycle(payloads.json_bodies()), start, None)
            self._pngs = itertools.islice(itertools.cycle(payloads.png_files()), start, None)

        @task
        def predict(self) -> None:
            kwargs: dict[str, Any]
            if target.payload == "png":
                kwargs = {"files": {"file": ("digit.png", next(self._pngs), "image/png")}}
            else:
                kwargs = {"data": next(self._bodies), "headers": HEADERS}
            with self.client.post(target.path, name=target.name, catch_response=True, **kwargs) as r:
                if r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")
                    return
                issue = checks.problem(r.content or b"", compare=target.compare)
                if issue:
                    r.failure(issue)

    TargetUser.__name__ = TargetUser.__qualname__ = target.user_class
    return TargetUser


for _target in TARGETS:
    globals()[_target.user_class] = _make_user(_target)
