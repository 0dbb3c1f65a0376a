"""The rollout's decisions on fake servers with a simulated clock: exact traces of what each server
is asked, in which order and when (the drain), for a roll, a rollback, a refused version (wrong
answers, a failed load), a canary, its promotion and its rollback. The real servers do the same in
tests/serving/test_rollout_native.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from serving.rollout.core import Clock, Rollout
from serving.rollout.log import Action, Event, RolloutLog
from serving.rollout.servers import LoadFailed, ServerError
from serving.rollout.settings import Endpoints, RolloutSettings, Target
from training.manifest import CheckResult

ROWS = np.zeros((3, 784), dtype=np.float32)
GOOD = np.full((3, 10), 0.1)
WRONG = np.full((3, 10), 0.5)


class SimClock:
    """Time moves only when the rollout sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 6))
            self.now += seconds

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.now, wall=lambda: 1_000_000.0 + self.now, sleep=self.sleep)


@dataclass
class FakeServer:
    name: str
    backends: tuple[str, ...]
    clock: SimClock
    trace: list[str]
    versions: set[int] = field(default_factory=lambda: {1})
    default: int = 1
    canary_version: int | None = None
    fails_to_load: set[int] = field(default_factory=set)
    wrong: set[int] = field(default_factory=set)
    labelled: bool = True  # TF Serving: `stable` already names the default
    persisted: int | None = None

    def _note(self, what: str) -> None:
        self.trace.append(f"{self.clock.now:g} {self.name} {what}")

    def serving(self) -> int | None:
        return self.default

    def loaded(self) -> list[int]:
        return sorted(self.versions)

    def canary(self) -> int | None:
        return self.canary_version

    def prepare(self) -> bool:
        if self.labelled:
            return False
        self._note(f"pin {self.default}")
        self.labelled = True
        return True

    def load(self, version: int, timeout_s: float) -> None:
        self._note(f"load {version}")
        if version in self.fails_to_load:
            raise LoadFailed(f"version {version} did not load: garbage")
        self.versions.add(version)

    def wait_ready(self, version: int, timeout_s: float, poll_s: float) -> str:
        return "ready"

    def answers(self, version: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        self._note(f"check {version}")
        return {b: WRONG if version in self.wrong else GOOD for b in self.backends}

    def mark_canary(self, version: int) -> None:
        self._note(f"canary {version}")
        self.canary_version = version

    def switch(self, version: int) -> None:
        self._note(f"switch {version}")
        self.default, self.canary_version = version, None

    def remove(self, version: int, timeout_s: float, poll_s: float) -> None:
        if version == self.default:
            raise ServerError("the default is never removed")
        self._note(f"remove {version}")
        self.versions.discard(version)
        if self.canary_version == version:
            self.canary_version = None

    def persist(self) -> None:
        self.persisted = self.default

    def close(self) -> None:
        pass


@dataclass
class FakeGateway:
    clock: SimClock
    trace: list[str]
    split: dict[str, tuple[int, float]] = field(default_factory=dict)

    def set_canary(self, backend: str, version: int, percent: float) -> None:
        self.trace.append(f"{self.clock.now:g} gateway canary {backend} {version} {percent:g}")
        self.split[backend] = (version, percent)

    def clear_canary(self, backend: str) -> None:
        self.trace.append(f"{self.clock.now:g} gateway clear {backend}")
        self.split.pop(backend, None)


def check(backend: str, version: int, probs: np.ndarray) -> CheckResult:
    ok = bool(np.allclose(probs, GOOD))
    return CheckResult(
        ok, 0.0 if ok else 0.4, () if ok else (0, 1, 2), f"{backend} {version} {'ok' if ok else 'wrong'}"
    )


@dataclass
class World:
    clock: SimClock = field(default_factory=SimClock)
    trace: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tf = FakeServer("tfserving", ("tfserving",), self.clock, self.trace)
        self.ts = FakeServer("torchserve", ("torchserve", "torchserve-onnx"), self.clock, self.trace)
        self.gateway = FakeGateway(self.clock, self.trace)

    def run(self, action: Action, version: int | None = None, percent: float | None = None, gateway: bool = True):
        settings = RolloutSettings(
            action=action,
            version=version,
            target=Target.NATIVE,
            endpoints=Endpoints("http://tf", "tf:1", "http://ts", "http://tsm", "http://gw"),
            artifacts=Path("/nonexistent"),
            tf_base_path="/models/mnist",
            canary_percent=percent,
            drain_s=3.5,
            follow_s=1.5,
        )
        rollout = Rollout(
            settings,
            [self.tf, self.ts],
            check,
            ROWS,
            self.gateway if gateway else None,
            self.clock.clock(),
            notify=lambda line: None,
        )
        return rollout.run()

    def of(self, server: str) -> list[str]:
        return [t for t in self.trace if t.split()[1] == server]


def events(log: RolloutLog, server: str) -> list[tuple[float, str, int]]:
    return [(s.at_s, str(s.event), s.version) for s in log.steps if s.server == server]


def test_a_roll_loads_beside_checks_switches_then_unloads_after_the_drain() -> None:
    w = World()
    log = w.run(Action.ROLL, 2)
    assert log.ok and log.previous == {"tfserving": 1, "torchserve": 1}
    assert w.of("tfserving") == [
        "0 tfserving load 2",
        "0 tfserving check 2",
        "0 tfserving switch 2",
        "3.5 tfserving remove 1",
    ]
    assert w.of("torchserve") == [
        "0 torchserve load 2", "0 torchserve check 2", "0 torchserve switch 2", "3.5 torchserve remove 1",
    ]  # fmt: skip
    assert w.of("gateway") == [
        "0 gateway clear tfserving",
        "0 gateway clear torchserve",
        "0 gateway clear torchserve-onnx",
    ]
    assert w.clock.sleeps == [3.5]  # one wait: the drain, from the switch
    assert events(log, "torchserve") == [
        (0, "load requested", 2), (0, "available/ready", 2), (0, "verified", 2), (0, "switched", 2),
        (0, "canary cleared", 2), (3.5, "drained", 1), (3.5, "old unloaded", 1),
    ]  # fmt: skip
    assert (w.tf.loaded(), w.ts.loaded(), w.tf.persisted, w.ts.persisted) == ([2], [2], 2, 2)
    assert log.time_to_serving("tfserving") == 0.0


def test_an_older_version_rolls_back_the_same_way() -> None:
    w = World()
    w.tf.versions, w.ts.versions, w.tf.default, w.ts.default = {3}, {3}, 3, 3
    log = w.run(Action.ROLL, 1)
    assert log.ok and log.previous == {"tfserving": 3, "torchserve": 3}
    assert w.of("tfserving") == [
        "0 tfserving load 1",
        "0 tfserving check 1",
        "0 tfserving switch 1",
        "3.5 tfserving remove 3",
    ]
    assert (w.tf.default, w.ts.default, w.tf.loaded(), w.ts.loaded()) == (1, 1, [1], [1])


@pytest.mark.parametrize("kind", ["wrong-answers", "fails-to-load"])
def test_a_bad_version_never_gets_traffic_and_is_removed_everywhere(kind: str) -> None:
    w = World()
    if kind == "wrong-answers":
        w.ts.wrong.add(2)  # only TorchServe's answers disagree
    else:
        w.tf.fails_to_load.add(2)  # only TF Serving fails to load it
    log = w.run(Action.ROLL, 2)
    assert not log.ok and "version 2 refused" in log.message and "Version 1 kept serving" in log.message
    assert not [t for t in w.trace if " switch " in t or "gateway" in t]
    assert "0 tfserving remove 2" in w.trace and "0 torchserve remove 2" in w.trace
    assert (w.tf.default, w.ts.default, w.tf.loaded(), w.ts.loaded()) == (1, 1, [1], [1])
    bad = "torchserve" if kind == "wrong-answers" else "tfserving"
    refused = [s for s in log.steps if s.event is Event.REFUSED]
    assert [s.server for s in refused] == [bad]
    assert ("disagree" if kind == "wrong-answers" else "did not load") in refused[0].detail
    assert w.clock.sleeps == [] and (w.tf.persisted, w.ts.persisted) == (None, None)


def test_a_version_already_serving_is_left_alone() -> None:
    w = World()
    log = w.run(Action.ROLL, 1)
    assert log.ok and "already serves" in log.message and w.trace == [] and log.steps == []


def test_unlabelled_tfserving_is_pinned_first_and_the_gateway_given_time_to_follow() -> None:
    w = World()
    w.tf.labelled = False
    log = w.run(Action.ROLL, 2)
    assert log.ok and w.of("tfserving")[:2] == ["0 tfserving pin 1", "1.5 tfserving load 2"]
    assert w.clock.sleeps == [1.5, 3.5]
    assert events(log, "tfserving")[0] == (0, "pinned", 1)


def test_a_canary_splits_traffic_and_keeps_the_old_default() -> None:
    w = World()
    log = w.run(Action.CANARY, 2, percent=10)
    assert log.ok and "--promote" in log.message
    assert w.of("tfserving") == ["0 tfserving load 2", "0 tfserving check 2", "0 tfserving canary 2"]
    assert w.gateway.split == {"tfserving": (2, 10), "torchserve": (2, 10), "torchserve-onnx": (2, 10)}
    assert (w.tf.default, w.ts.default, w.tf.loaded(), w.ts.loaded()) == (1, 1, [1, 2], [1, 2])
    assert w.clock.sleeps == []


def test_a_canary_needs_the_gateway() -> None:
    w = World()
    log = w.run(Action.CANARY, 2, percent=10, gateway=False)
    assert not log.ok and "needs the gateway" in log.message and w.trace == []


def test_promote_switches_to_the_canary_ends_the_split_then_unloads_the_old_after_the_drain() -> None:
    w = World()
    w.run(Action.CANARY, 2, percent=10)
    w.trace.clear()
    log = w.run(Action.PROMOTE)
    assert log.ok and log.version == 2
    assert w.trace == [
        "0 tfserving switch 2", "0 torchserve switch 2",
        "0 gateway clear tfserving", "0 gateway clear torchserve", "0 gateway clear torchserve-onnx",
        "3.5 tfserving remove 1", "3.5 torchserve remove 1",
    ]  # fmt: skip
    assert w.gateway.split == {} and (w.tf.loaded(), w.ts.loaded(), w.tf.persisted) == ([2], [2], 2)


def test_rollback_ends_the_split_then_unloads_the_canary_after_the_drain() -> None:
    w = World()
    w.run(Action.CANARY, 2, percent=10)
    w.trace.clear()
    log = w.run(Action.ROLLBACK)
    assert log.ok and log.version == 2
    assert w.trace == [
        "0 gateway clear tfserving", "0 gateway clear torchserve", "0 gateway clear torchserve-onnx",
        "3.5 tfserving remove 2", "3.5 torchserve remove 2",
    ]  # fmt: skip
    assert (w.tf.default, w.tf.loaded(), w.ts.loaded(), w.tf.canary()) == (1, [1], [1], None)


@pytest.mark.parametrize("action", [Action.PROMOTE, Action.ROLLBACK])
def test_promote_and_rollback_need_a_canary(action: Action) -> None:
    w = World()
    log = w.run(action)
    assert not log.ok and "no canary on tfserving, torchserve" in log.message and w.trace == []


def test_the_log_round_trips_as_json() -> None:
    w = World()
    log = w.run(Action.ROLL, 2)
    data = log.to_json()
    assert data["time_to_serving_s"] == {"tfserving": 0.0, "torchserve": 0.0}
    assert RolloutLog.from_json(data) == log


def test_settings_refuse_what_cannot_run() -> None:
    base = {"target": Target.NATIVE, "endpoints": Endpoints("a", "b", "c", "d", None), "artifacts": Path("."),
            "tf_base_path": "/m"}  # fmt: skip
    with pytest.raises(ValueError, match="needs a version"):
        RolloutSettings(action=Action.ROLL, version=None, **base)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="between 0 and 100"):
        RolloutSettings(action=Action.CANARY, version=2, canary_percent=100, **base)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="servers must be"):
        RolloutSettings(action=Action.ROLL, version=2, servers=("triton",), **base)  # type: ignore[arg-type]
