"""load-rollout's accounting on synthetic answers with a known outcome (the rollout itself runs for
real in tests/serving/test_rollout_native.py): how answers split around a server's steps, which
versions are expected, what counts as failed; and the report computed from it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from load_tests.generator.lean import Sample
from load_tests.reports.rollout import headline, load, write_report
from load_tests.results import PhaseResult, RolloutRun
from load_tests.runs.rollout import PHASES, server_phase, version_tag
from serving.rollout.log import Action, Event, RolloutLog, Step

ORIGIN = 1_000.0  # Unix time of the load's offset 0
COMMAND_AT = 2.5  # the rollout command started 2.5 s into the load, its first step 0.5 s later


def _log(ok: bool = True) -> RolloutLog:
    steps = [
        Step("tfserving", Event.LOAD_REQUESTED, 2, 0.0, ORIGIN + 3.0),
        Step("tfserving", Event.READY, 2, 0.5, ORIGIN + 3.5),
    ]
    if ok:
        steps += [
            Step("tfserving", Event.SWITCHED, 2, 1.0, ORIGIN + 4.0),
            Step("tfserving", Event.OLD_UNLOADED, 2, 4.5, ORIGIN + 7.5),
        ]
    else:
        steps += [
            Step("tfserving", Event.REFUSED, 2, 1.0, ORIGIN + 4.0),
            Step("tfserving", Event.NEW_UNLOADED, 2, 1.2, ORIGIN + 4.2),
        ]
    return RolloutLog(Action.ROLL, 2, {"tfserving": 1}, ("tfserving",), "native", ORIGIN + 3.0, steps, ok, "m")


def _samples() -> list[Sample]:
    """TF Serving (request 0) every 0.1 s for 10 s at 5 ms (15 ms from the command's start to its last
    step), answered by 1 until 4.5 s, then by 2; one refusal at 5.0 s; TorchServe (request 1) at 7 ms,
    always version 1."""
    out = []
    for i in range(100):
        t = i / 10
        status, tag = (503, "overloaded") if i == 50 else (200, "1" if t < 4.5 else "2")
        out.append(Sample(t, 0.1, 5.0 + (10.0 if 25 <= i < 75 else 0.0), status, 0, tag, True))
        out.append(Sample(t + 0.05, 0.1, 7.0, 200, 1, "1", True))
    return out


def test_a_rolled_server_splits_at_its_own_steps() -> None:
    s = server_phase("tfserving", PHASES[0], _log(), _samples(), ORIGIN, COMMAND_AT)
    assert (s.rolled, s.requests, s.failed, s.failed_by) == (True, 100, 1, {"overloaded": 1})
    assert s.versions == {"1": 45, "2": 54}
    assert s.unexpected_versions == 0
    assert s.p99_before_ms == pytest.approx(5.0)  # 1.0 s (warm-up) <= offset < 2.5 s (the command)
    assert s.p99_during_ms == pytest.approx(15.0)  # 2.5 s <= offset < 7.5 s (the last step)
    assert s.p99_after_ms == pytest.approx(5.0)
    assert s.time_to_serving_s == pytest.approx(1.0)
    assert s.old_last_after_switch_s == pytest.approx(4.4 + 0.015 - 4.0)
    assert s.new_first_after_switch_s == pytest.approx(4.5 + 0.015 - 4.0)


def test_the_neighbour_keeps_what_it_serves_and_a_refused_version_is_unexpected() -> None:
    neighbour = server_phase("torchserve", PHASES[0], _log(), _samples(), ORIGIN, COMMAND_AT)
    assert (neighbour.rolled, neighbour.requests, neighbour.failed, neighbour.unexpected_versions) == (False, 100, 0, 0)
    assert neighbour.time_to_serving_s is None and neighbour.old_last_after_switch_s is None
    # A bad version must never answer: on a refused rollout only the old version is expected.
    bad = server_phase("tfserving", PHASES[4], _log(ok=False), _samples(), ORIGIN, COMMAND_AT)
    assert bad.unexpected_versions == 54


def test_version_tag_names_the_answer() -> None:
    assert version_tag(200, orjson.dumps({"predictions": [], "model_version": "2"})) == "2"
    assert version_tag(503, orjson.dumps({"error": {"type": "overloaded", "message": "m"}})) == "overloaded"
    assert version_tag(0, b"") == "no answer"
    assert version_tag(502, b"<html>") == "unreadable"


def _run(failed_tf: bool = False) -> RolloutRun:
    run = RolloutRun("native", "standin", 20.0, 200.0, [{"rate": 50.0, "p99_ms": 8.0, "failed": 0, "requests": 200}],
                     100.0, "abc", False, 2, ["0.1", "0.1", "0.1"], ["0.2", "0.2", "0.2"])  # fmt: skip
    for i, phase in enumerate(PHASES[:4]):
        server = phase.servers[0]
        log = _log()
        samples = _samples()
        servers = [server_phase(s, phase, log, samples, ORIGIN, COMMAND_AT) for s in ("tfserving", "torchserve")]
        for s in servers:
            if s.server == server:
                s.time_to_serving_s = 1.0 if server == "tfserving" else 8.0 + i
                s.rolled = True
            if not failed_tf:
                s.failed, s.failed_by = 0, {}
        result = PhaseResult(0, phase.name, phase.version, True, True, 0, "ok", 9.0, 0.5, 30.0, ORIGIN, servers,
                             log.to_json())  # fmt: skip
        run.phases.append(result)
    run.samples = {PHASES[0].name: [[s.offset_s, s.latency_ms, s.request, s.tag] for s in _samples()]}
    return run


def test_the_report_says_what_the_data_says(tmp_path: Path) -> None:
    run = _run()
    text = headline(run)
    assert text.startswith("**0 of 800 requests failed** through 4 rollouts")
    assert "TF Serving 1.0 [1.0–1.0] s, TorchServe 10.5 [10.0–11.0] s" in text
    assert "TorchServe took 10.5x as long as TF Serving (median), longer in every roll-out." in text
    assert headline(_run(failed_tf=True)).startswith("**4 of 800 requests failed**")
    (tmp_path / "rollout.json").write_bytes(orjson.dumps(run, option=orjson.OPT_SERIALIZE_DATACLASS))
    report = write_report(load(tmp_path), tmp_path)
    assert (tmp_path / "rollout.png").stat().st_size > 10_000
    body = report.read_text()
    assert "commit abc, unchanged" in body and "the stand-in" in body
    assert "| tfserving 1 -> 2 | TF Serving | 100 | **0** |" in body
