"""The TF Serving stand-in's version lifecycle, as the real server's: the availability-preserving
policy (exact action traces), label checks on reload, new policies taken up at the next file-system
poll, loads retried then ended with their error, an old version kept until the new one is
AVAILABLE and unloaded only after the requests it holds. Loads are injected (a version is a folder
with a saved_model.pb and a fake servable); the real server process is driven by gRPC in
tests/serving/test_rollout_native.py. The declared config messages are checked against
tensorflow-serving-api's generated ones."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.tfserving import config as tf_config
from serving.tfserving import messages
from serving.tfserving_standin.errors import ServingError
from serving.tfserving_standin.manager import Lifecycle, ModelManager, State
from serving.tfserving_standin.policy import Action, Phase, Snapshot, next_action

# ---- the policy ----------------------------------------------------------------------------------


def _drive(aspired: set[int], phases: dict[int, Phase], fails: frozenset[int] = frozenset()) -> list[str]:
    """Apply next_action until it has nothing left to do; the actions taken, in order."""
    trace = []
    while (action := next_action(Snapshot(v, v in aspired, p) for v, p in phases.items())) is not None:
        trace.append(f"{action.kind} {action.version}")
        if action.kind == "unload":
            del phases[action.version]
        else:
            phases[action.version] = Phase.ERROR if action.version in fails else Phase.READY
        phases.update({v: Phase.NEW for v in aspired if v not in phases})
    return trace


def test_a_new_version_loads_before_the_old_one_unloads() -> None:
    assert _drive({2}, {1: Phase.READY, 2: Phase.NEW}) == ["load 2", "unload 1"]


def test_a_version_that_fails_to_load_leaves_the_old_one_serving() -> None:
    phases = {1: Phase.READY, 2: Phase.NEW}
    assert _drive({2}, phases, fails=frozenset({2})) == ["load 2"]
    assert phases == {1: Phase.READY, 2: Phase.ERROR}


def test_unloads_come_first_lowest_first_then_the_highest_new_version() -> None:
    # two un-aspired versions serving: one may go even before the aspired ones load
    assert _drive({3, 4}, {1: Phase.READY, 2: Phase.READY, 3: Phase.NEW, 4: Phase.NEW}) == [
        "unload 1", "load 4", "unload 2", "load 3",
    ]  # fmt: skip
    assert _drive(set(), {1: Phase.READY}) == ["unload 1"]  # nothing aspired: the model goes
    assert next_action([Snapshot(1, True, Phase.READY), Snapshot(2, True, Phase.LOADING)]) is None
    assert next_action([Snapshot(1, False, Phase.READY), Snapshot(2, True, Phase.LOADING)]) is None
    assert next_action([Snapshot(1, False, Phase.READY), Snapshot(2, True, Phase.READY)]) == Action("unload", 1)


# ---- the manager ---------------------------------------------------------------------------------


class FakeServable:
    def __init__(self, name: str, version: int):
        self.name, self.version, self.closed = name, version, False

    def close(self) -> None:
        self.closed = True


class Loads:
    def __init__(self, fails: set[int] | None = None):
        self.fails, self.calls = fails or set(), list[int]()

    def __call__(self, name: str, version: int, path: Path) -> Any:
        self.calls.append(version)
        if version in self.fails:
            raise OSError(f"cannot parse {path / 'saved_model.pb'}")
        return FakeServable(name, version)


def _base(tmp_path: Path, *versions: int) -> Path:
    for v in versions:
        (tmp_path / "mnist" / str(v)).mkdir(parents=True, exist_ok=True)
        (tmp_path / "mnist" / str(v) / "saved_model.pb").write_bytes(b"")
    return tmp_path / "mnist"


def _config(base: Path, versions: list[int], labels: dict[str, int]) -> Any:
    """The rollout's declared message, parsed by the generated class the stand-in uses."""
    wire = tf_config.model_server_config(str(base), versions, labels).SerializeToString()
    return model_server_config_pb2.ModelServerConfig.FromString(wire)


def _states(m: ModelManager) -> dict[int, str]:
    return {s.version: s.state.name for s in m.status("mnist")}


async def _settled(m: ModelManager) -> None:
    for model in m.models.values():
        await asyncio.wait_for(model.settled.wait(), 5)


def _run(body: Callable[[ModelManager], Awaitable[None]], loads: Loads, **lifecycle: Any) -> None:
    async def main() -> None:
        m = ModelManager(None, lifecycle=Lifecycle(file_system_poll_wait_s=0, **lifecycle), load=loads)
        try:
            await body(m)
        finally:
            m.close()

    asyncio.run(main())


def test_labels_at_start_need_the_flag_as_in_the_real_server(tmp_path: Path) -> None:
    base = _base(tmp_path, 1)

    async def refused(m: ModelManager) -> None:
        with pytest.raises(ServingError, match="not currently available") as exc:
            await m.start(_config(base, [1], {"stable": 1}))
        assert exc.value.code is grpc.StatusCode.FAILED_PRECONDITION

    async def allowed(m: ModelManager) -> None:
        await m.start(_config(base, [1], {"stable": 1}))
        assert _states(m) == {1: "AVAILABLE"} and m.resolve("mnist", label="stable").version == 1

    _run(refused, Loads())
    _run(allowed, Loads(), allow_version_labels_for_unavailable_models=True)


def test_a_reload_loads_at_the_next_poll_and_labels_move_only_to_available_versions(tmp_path: Path) -> None:
    base = _base(tmp_path, 1, 2)
    loads = Loads()

    async def body(m: ModelManager) -> None:
        await m.start(_config(base, [1], {}))
        await m.reload(_config(base, [1, 2], {"stable": 1}))
        with pytest.raises(ServingError, match="version 2 of model mnist, which is not currently available"):
            await m.reload(_config(base, [1, 2], {"stable": 2}))  # 2 has not loaded: refused whole
        assert loads.calls == [1] and m.models["mnist"].labels == {"stable": 1}
        m.poll()  # the file-system poll takes the new policy up
        await _settled(m)
        assert _states(m) == {2: "AVAILABLE", 1: "AVAILABLE"} and loads.calls == [1, 2]
        await m.reload(_config(base, [1, 2], {"stable": 2, "canary": 1}))
        assert m.resolve("mnist", label="stable").version == 2 and m.resolve("mnist").version == 2
        await m.reload(_config(base, [2], {"stable": 2}))
        m.poll()
        await _settled(m)
        assert _states(m) == {2: "AVAILABLE", 1: "END"}
        with pytest.raises(ServingError, match=r"Specific\(mnist, 1\)"):
            m.resolve("mnist", 1)

    _run(body, loads, allow_version_labels_for_unavailable_models=True)


def test_a_failed_load_is_retried_then_ends_with_its_error_and_the_old_version_serves(tmp_path: Path) -> None:
    base = _base(tmp_path, 1, 3)
    loads = Loads(fails={3})

    async def body(m: ModelManager) -> None:
        await m.start(_config(base, [1], {}))
        await m.reload(_config(base, [3], {}))  # 3 alone: 1 is not aspired any more
        m.poll()
        await _settled(m)
        assert loads.calls == [1, 3, 3]  # one retry
        (failed,) = m.status("mnist", 3)
        assert failed.state is State.END and "cannot parse" in failed.error
        assert _states(m) == {3: "END", 1: "AVAILABLE"}  # availability preserved
        m.poll()
        await _settled(m)
        assert loads.calls == [1, 3, 3]  # not tried again while it stays aspired
        await m.reload(_config(base, [1], {}))
        m.poll()
        await m.reload(_config(base, [1, 3], {}))
        m.poll()
        await _settled(m)
        assert loads.calls == [1, 3, 3, 3, 3]  # aspired again: tried again

    _run(body, loads, max_num_load_retries=1, load_retry_interval_s=0)


def test_an_old_version_is_unloaded_only_after_the_requests_it_holds(tmp_path: Path) -> None:
    base = _base(tmp_path, 1, 2)

    async def body(m: ModelManager) -> None:
        await m.start(_config(base, [1, 2], {}))
        held = m.models["mnist"].versions[1]
        held.in_flight += 1  # what predict() does for a request it holds
        held.idle.clear()
        servable = held.servable
        await m.reload(_config(base, [2], {}))
        m.poll()
        await asyncio.sleep(0.05)
        assert _states(m)[1] == "UNLOADING"  # no new request resolves it; the held one finishes
        with pytest.raises(ServingError):
            m.resolve("mnist", 1)
        assert isinstance(servable, FakeServable) and not servable.closed
        held.in_flight -= 1
        held.idle.set()
        await _settled(m)
        assert _states(m)[1] == "END" and servable.closed

    _run(body, Loads())


def test_a_changed_config_file_is_reloaded(tmp_path: Path) -> None:
    from serving.tfserving_standin.__main__ import poll_config_file

    base = _base(tmp_path, 1, 2)
    path = tmp_path / "models.config"
    path.write_text(tf_config.render_model_config(tf_config.model_server_config(str(base), [1], {})))

    async def body(m: ModelManager) -> None:
        from serving.tfserving_standin import configs

        await m.start(configs.load_model_config(path))
        poller = asyncio.create_task(poll_config_file(m, str(path), 0.02, path.read_text()))
        tf_config.write_model_config(base, path, [1, 2], {"stable": 1})
        for _ in range(100):
            await asyncio.sleep(0.02)
            if m.models["mnist"].labels == {"stable": 1}:
                break
        poller.cancel()
        assert m.models["mnist"].labels == {"stable": 1}
        m.poll()
        await _settled(m)
        assert _states(m) == {2: "AVAILABLE", 1: "AVAILABLE"}

    _run(body, Loads())


# ---- the declared messages -----------------------------------------------------------------------


def test_the_declared_messages_are_the_real_servers() -> None:
    ours = tf_config.model_server_config("/models/mnist", [1, 2], {"stable": 2, "canary": 1})
    theirs = text_format.Parse(text_format.MessageToString(ours), model_server_config_pb2.ModelServerConfig())
    assert theirs.SerializeToString(deterministic=True) == ours.SerializeToString(deterministic=True)
    request = messages.ReloadConfigRequest()
    request.config.CopyFrom(ours)
    parsed = model_management_pb2.ReloadConfigRequest.FromString(request.SerializeToString())
    assert list(parsed.config.model_config_list.config[0].model_version_policy.specific.versions) == [1, 2]
    assert dict(parsed.config.model_config_list.config[0].version_labels) == {"stable": 2, "canary": 1}
    response = model_management_pb2.ReloadConfigResponse()
    response.status.error_code = 9  # FAILED_PRECONDITION
    response.status.error_message = "no"
    back = messages.ReloadConfigResponse.FromString(response.SerializeToString())
    assert (back.status.error_code, back.status.error_message) == (9, "no")
    # and the shipped file parses with both
    shipped = tf_config.read_model_config(tf_config.CONFIG_DIR / "models.config")
    assert tf_config.served(shipped) == (None, {})
