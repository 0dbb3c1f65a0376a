"""The load targets against the real stack where a unit test cannot tell: the Open Inference
Protocol target's path, body and answer check agree with the gateway (one open-loop point through
the Locust user, as make load runs it), and the answer check refuses what is wrong."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from load_tests.generator import checks, payloads
from load_tests.measure.point import PointConfig, record, run_point
from load_tests.targets import BY_NAME, Endpoints

V2 = BY_NAME["gateway-v2-torchserve"]


def test_the_v2_target_is_answered_and_checked_through_the_gateway(serving_stack, tmp_path: Path) -> None:
    ep = Endpoints.native(serving_stack.ports)
    r = httpx.post(ep.url(V2) + V2.path, content=payloads.v2_bodies()[0], headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert checks.answer(r.content, v2=True) == (None, "torchserve")
    cfg = PointConfig(warmup_s=0.2, min_window_s=0.4, max_windows=2, early_stop=False, min_samples=40, processes=1)
    p = record(run_point(V2, 40.0, 1, cfg, ep, tmp_path, "v2"), V2.name, 0, 1, cfg.slo_ms)
    assert p.samples >= 10 and p.failed == 0 and p.p50_ms is not None, p


def test_the_v2_answer_check_refuses_what_is_wrong() -> None:
    good = {"model_name": "mnist-tfserving", "outputs": [{"name": "probabilities", "data": [0.1] * 10}]}
    assert checks.answer(orjson.dumps(good), v2=True) == (None, "tfserving")
    short = {**good, "outputs": [{"name": "probabilities", "data": [0.5, 0.5]}]}
    assert checks.answer(orjson.dumps(short), v2=True)[0] == "probabilities are not 1x10"
    off = {**good, "outputs": [{"name": "probabilities", "data": [0.2] * 10}]}
    assert checks.answer(orjson.dumps(off), v2=True)[0] == "probabilities sum to 2.000000"
    assert checks.answer(orjson.dumps({"error": "x"}), v2=True)[0] == "answer has no outputs list"
