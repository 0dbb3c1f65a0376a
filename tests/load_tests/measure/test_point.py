"""The intended-time table, the merge of several processes and the point analysis, on synthetic inputs."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest

from load_tests import stats
from load_tests.contracts import Recording, RunSpec
from load_tests.generator.schedule import PoissonSchedule, share
from load_tests.measure import point as measure


def _take(schedule: PoissonSchedule, n: int) -> np.ndarray:
    return np.fromiter(itertools.islice(schedule, n), float)


def test_latency_counts_from_the_intended_time_and_unanswered_stay_failed() -> None:
    sent: dict[str, list[float]] = {"seq": [0, 1, 2, 3], "t": [0.0, 0.1, 0.2, 0.3]}
    # Request 1 left 5 ms late (send lag) and took 1 ms on the wire: 6 ms from its intended time.
    done: dict[str, list[float]] = {
        "seq": [0, 1, 3],
        "t": [0.0, 0.1, 0.3],
        "ms": [1.0, 6.0, 2.0],
        "lag_ms": [0.1, 5.0, 0.1],
        "ok": [1.0, 1.0, 0.0],
        "batch": [1, 2, 0],
    }
    table = stats.open_loop_table(sent, done)
    assert list(table["ms"][:2]) == [1.0, 6.0]
    assert math.isinf(table["ms"][2]) and not table["ok"][2]  # never answered
    assert math.isinf(table["ms"][3]) and not table["ok"][3]  # answered wrongly
    assert table["lag_ms"][1] == 5.0 and list(table["batch"]) == [1, 2, 0, 0]


def _synthetic_run(rate: float, seconds: float, latency_ms: float, lag_ms: float, parts: int = 1) -> list[Recording]:
    """One recording per process of a run whose processes split one schedule (schedule.share)."""
    origin = 1000.0
    recs = []
    for part in range(parts):
        rows = list(itertools.takewhile(lambda r: r[1] < seconds, share(PoissonSchedule(rate, 3), part, parts)))
        seq, t = [float(r[0]) for r in rows], [r[1] for r in rows]
        n = len(rows)
        # [clock, own CPU s, busy, idle, steal (jiffies), waiting s]: 30 % of a core busy, 10 % of it waiting.
        marks = [[float(origin + s), 0.3 * s, 60.0 * s, 140.0 * s, 0.0, 0.1 * s]
                 for s in np.arange(0, seconds + 0.5, 0.5).tolist()]  # fmt: skip
        recs.append(
            Recording(
                spec=RunSpec(rate=rate, processes=parts, warmup_s=1.0),
                process=part,
                origin=origin,
                warmup_s=1.0,
                sent={"x": {"seq": seq, "t": t}},
                done={"x": {"seq": seq, "t": t, "ms": [latency_ms] * n, "lag_ms": [lag_ms] * n, "ok": [1.0] * n,
                            "batch": [0] * n}},
                marks=marks,
            )
        )  # fmt: skip
    return recs


def test_analysis_of_a_steady_run() -> None:
    p = measure.analyse(_synthetic_run(1000, 9.5, 2.0, 0.1), "x", 1000, 10.0, 2.0)
    assert p.stable and p.windows == 4 and p.valid
    assert p.p99_ms == 2.0 and p.failed == 0 and p.passes(10.0)
    assert p.throughput == pytest.approx(1000, rel=0.05)
    assert p.extra["generator_core_share"] == pytest.approx(0.3)  # its whole CPU: what the guard judges
    assert p.extra["generator_waiting_share"] == pytest.approx(0.1)  # of which a precise wait's spin
    assert p.extra["generator_machine_share"] == pytest.approx(0.3 / (os.cpu_count() or 1))
    assert p.extra["machine_idle"] == pytest.approx(0.7)
    assert p.extra["generator_cpu_us_per_req"] == pytest.approx(300, rel=0.06)
    # Every request left 0.1 ms late and took 2.0 ms from its intended time: the lag moved p99 by 0.1 ms.
    assert p.extra["lag_impact_ms"] == pytest.approx(0.1) and p.extra["p99_without_lag_ms"] == pytest.approx(1.9)


def test_several_processes_merge_into_the_same_point() -> None:
    one = measure.analyse(_synthetic_run(1000, 9.5, 2.0, 0.1), "x", 1000, 10.0, 2.0)
    three = measure.analyse(_synthetic_run(1000, 9.5, 2.0, 0.1, parts=3), "x", 1000, 10.0, 2.0)
    assert three.extra["generator_processes"] == 3 and one.extra["generator_processes"] == 1
    # The same arrivals, split three ways: the same samples, windows and throughput.
    assert (three.samples, three.windows, three.stable) == (one.samples, one.windows, one.stable)
    assert three.throughput == one.throughput and three.p99_ms == one.p99_ms
    # CPU per request adds the processes up; the guard takes the busiest one.
    assert three.extra["generator_cpu_us_per_req"] == pytest.approx(3 * one.extra["generator_cpu_us_per_req"])
    assert three.extra["generator_core_share"] == pytest.approx(0.3)
    assert three.extra["generator_machine_share"] == pytest.approx(3 * one.extra["generator_machine_share"])


def test_merge_orders_by_sequence_and_a_lost_answer_stays_failed() -> None:
    a = stats.open_loop_table({"seq": [0, 2, 4], "t": [0.0, 0.2, 0.4]},
                              {"seq": [4, 0], "t": [0.4, 0.0], "ms": [3.0, 1.0], "lag_ms": [0, 0], "ok": [1, 1],
                               "batch": [0, 0]})  # fmt: skip
    b = stats.open_loop_table(
        {"seq": [1, 3], "t": [0.1, 0.3]}, {"seq": [1], "t": [0.1], "ms": [2.0], "lag_ms": [0], "ok": [1], "batch": [0]}
    )
    m = stats.merge_tables([b, a])
    assert list(m["seq"]) == [0, 1, 2, 3, 4] and list(m["t"]) == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert list(m["ok"]) == [True, True, False, False, True]
    assert list(m["ms"][[0, 1, 4]]) == [1.0, 2.0, 3.0] and math.isinf(m["ms"][2])


def test_analysis_flags_a_lagging_generator() -> None:
    p = measure.analyse(_synthetic_run(1000, 9.5, 2.0, 0.9), "x", 1000, 10.0, 2.0)
    assert not p.valid and any("send lag" in r for r in p.invalid)
    assert p.passes(10.0)  # the SLO verdict and the validity flag are separate


def test_split_sizes_processes_from_the_cpu_per_request() -> None:
    assert measure.processes_for(1000, 200.0, cap=8) == 1  # 20 % of a core
    assert measure.processes_for(4000, 200.0, cap=8) == 2  # 80 %: two processes of 40 %
    assert measure.processes_for(16000, 200.0, cap=8) == 7  # 3.2 cores at ≤ 50 % each
    assert measure.processes_for(100000, 200.0, cap=8) == 8  # never more than the generator's cores
    assert measure.processes_for(1000, math.nan, cap=8) == 1
    cfg = measure.PointConfig(processes=0, cpu_us_per_req=200.0)
    assert cfg.processes_at(4000) == min(2, measure.generator_cores())
    assert measure.PointConfig(processes=0, cpu_us_per_req=200.0, max_processes=4).processes_at(16000) == 4
    assert measure.PointConfig(processes=3).processes_at(10) == 3


def test_a_point_is_recorded_typed_with_unknowns_as_null() -> None:
    p = measure.analyse(_synthetic_run(1000, 9.5, 2.0, 0.9), "x", 1000, 10.0, 2.0)
    p.extra["server_cpu_us_per_req"] = {"floor-onnx-batching": math.nan}
    rec = measure.record(p, "x", block=3, seed=4, slo_ms=10.0)
    assert (rec.target, rec.block, rec.seed, rec.rate, rec.p99_ms) == ("x", 3, 4, 1000, 2.0)
    assert rec.passes and not rec.valid and rec.guard.reasons == p.invalid
    assert rec.guard.lag_impact_ms == pytest.approx(0.9) and rec.guard.generator_processes == 1
    assert rec.server_cpu_us_per_req == {"floor-onnx-batching": None}  # nan is written as null
    nothing = measure.record(measure.analyse([], "x", 10, 10.0, 1.0), "x", 0, 1, 10.0)
    assert nothing.p99_ms is None and not nothing.valid and not nothing.passes


def test_a_recording_round_trips_through_json() -> None:
    (rec,) = _synthetic_run(100, 3.0, 2.0, 0.1)
    back = Recording.loads(rec.dumps())
    assert back.spec == rec.spec and back.sent == rec.sent and back.done["x"]["ms"] == rec.done["x"]["ms"]
    assert back.origin == rec.origin and back.marks == rec.marks


def test_batch_sizes_from_request_headers_count_each_batch_once() -> None:
    from load_tests.measure.scrape import batch_from_requests

    # Two batches of 4 (8 requests reporting 4) and four single requests: 6 batches, mean 2.
    b = batch_from_requests(np.array([4] * 8 + [1] * 4 + [0] * 3))
    assert b is not None and b["mean"] == pytest.approx(2.0)
    assert b["hist"] == pytest.approx({"≤1": 4 / 6, "≤4": 2 / 6})
    assert batch_from_requests(np.zeros(5, dtype=int)) is None
    assert stats.percentile_ms(np.array([]), 99) != stats.percentile_ms(np.array([]), 99)  # nan


def test_the_generator_runs_real_time_only_where_the_machine_allows_it() -> None:
    assert measure.priority_of("normal") == "normal"
    expected = f"SCHED_RR {measure.REALTIME_PRIORITY}" if measure.realtime_allowed() else "normal"
    assert measure.priority_of("realtime") == expected
