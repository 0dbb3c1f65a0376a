"""Rollouts on the real native servers (the TF Serving stand-in, TorchServe 0.12) behind the real
gateway, under open-loop load, with 0 failed requests: version 1 -> 2 on both servers; then two bad
versions (wrong answers, fails to load) refused while version 2 keeps serving.

A stack of its own (its versions move; the session's stack stays as other tests expect it), on a
copy of the session's artifacts to which versions are added after it started.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_serving.ports import local_url
from serving.native.settings import ServingPorts
from serving.native.stack import ServingStack, running
from serving.rollout.__main__ import OK, REFUSED, run
from serving.rollout.log import Action, Event, RolloutLog
from serving.rollout.settings import GATEWAY_FOLLOW_S, native
from serving.tfserving import config as tf_config
from serving.torchserve import config as ts_config
from tests.serving.openloop import Answer, OpenLoad
from training.copy_version import copy_version

pytestmark = pytest.mark.timeout(600)
RATE = 100.0  # requests per second through the gateway, over the three backends
BACKENDS = ("tfserving", "torchserve", "torchserve-onnx")


@pytest.fixture(scope="module")
def stack(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingStack]:
    root = tmp_path_factory.mktemp("rollout") / "artifacts"
    shutil.copytree(artifacts, root)
    with running(root, tmp_path_factory.mktemp("rollout-run"), ServingPorts.free(), with_gateway=True) as s:
        copy_version(root, 1, 2)  # trained "after the stack started": a rollout brings it in
        yield s


@pytest.fixture(scope="module")
def row(test_split) -> np.ndarray:
    return test_split.x_test[0]


def _roll(stack: ServingStack, row: np.ndarray, version: int) -> tuple[RolloutLog, int, list[Answer]]:
    load = OpenLoad(local_url(stack.ports.gateway), RATE, BACKENDS, row).start()
    time.sleep(1.0)  # load before the rollout starts ...
    try:
        log, status = run(native(stack.info(), Action.ROLL, version), notify=print)
    finally:
        time.sleep(1.5)  # ... and after it ended
        answers = load.stop()
    return log, status, answers


def _failed(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.status != 200]


def _served_versions(stack: ServingStack) -> tuple[list[int] | None, int]:
    tf = tf_config.served(tf_config.read_model_config(stack.info().tf_model_config))[0]
    ts = ts_config.served_version(ts_config.read(stack.info().ts_config))
    return tf, ts


def test_roll_1_to_2_under_load_loses_no_request(stack: ServingStack, row: np.ndarray) -> None:
    log, status, answers = _roll(stack, row, 2)
    assert status == OK and log.ok, log.message
    failed = _failed(answers)

    assert failed == [], f"{len(failed)} of {len(answers)} failed: {failed[:5]}"
    assert len(answers) > 5 * RATE
    assert {a.version for a in answers} == {"1", "2"}
    for server, backends in (("tfserving", ("tfserving",)), ("torchserve", ("torchserve", "torchserve-onnx"))):
        switched, drained = log.at(server, Event.SWITCHED), log.at(server, Event.DRAINED)
        assert switched is not None and drained is not None and log.at(server, Event.OLD_UNLOADED) is not None
        ours = [a for a in answers if a.backend in backends]
        # Before the load was requested only 1 answered; once the gateway followed the switch, only 2.
        loaded = log.started_wall + log.steps[0].at_s
        assert {a.version for a in ours if a.sent < loaded} == {"1"}
        assert {a.version for a in ours if a.sent > switched.wall + GATEWAY_FOLLOW_S} == {"2"}
        last_old = max(a.answered for a in ours if a.version == "1")
        first_new = min(a.answered for a in ours if a.version == "2")
        p99_ms = np.percentile([a.latency_s for a in ours], 99) * 1e3
        print(
            f"\n{server}: {len(ours)} answers, 0 failed; load requested -> serving 2 in "
            f"{log.time_to_serving(server):.1f} s; after the switch the first answer from 2 came at "
            f"{first_new - switched.wall:+.2f} s, the last from 1 at {last_old - switched.wall:+.2f} s "
            f"(the drain waits {drained.at_s - switched.at_s:.1f} s); p99 {p99_ms:.0f} ms"
        )
    # A restarted server comes back with version 2: the files it reads at start say so.
    assert _served_versions(stack) == ([2], 2)


def test_bad_versions_are_refused_and_2_keeps_serving(stack: ServingStack, row: np.ndarray) -> None:
    from training import bad_version

    root = stack.artifacts
    bad_version.write(root, 3, "wrong-answers", source=2)
    bad_version.write(root, 4, "fails-to-load", source=2)
    for version, reason in ((3, "disagree with the manifest's held-out check"), (4, "did not load")):
        log, status, answers = _roll(stack, row, version)
        assert status == REFUSED and not log.ok, log.message
        assert reason in log.message
        assert _failed(answers) == [] and {a.version for a in answers} == {"2"}
        refused = [st for st in log.steps if st.event is Event.REFUSED]
        assert refused and all(st.version == version for st in refused)
        assert not [st for st in log.steps if st.event is Event.SWITCHED]
        assert {st.server for st in log.steps if st.event is Event.NEW_UNLOADED} == {"tfserving", "torchserve"}
        print(f"\nversion {version}: {len(answers)} answers, 0 failed, all from 2; {log.message}")
    assert _served_versions(stack) == ([2], 2)
