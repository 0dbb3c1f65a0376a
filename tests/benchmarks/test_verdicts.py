"""Every measuring command ends with a verdict computed from its figures, and writes report.md, a
plot and figures.json (load_tests/reports/bench.py): checked here on figures with a known outcome."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from benchmarks import overload, servers
from benchmarks.runner import Result
from gateway.benchmarks import validation
from load_tests.reports.bench import BenchReport, finish


def test_finish_writes_the_folder_and_prints_the_verdict_last(tmp_path: Path, capsys) -> None:
    def plot(png: Path) -> None:
        png.write_bytes(b"png")

    report = BenchReport("T", ["VERDICT: valid", "  detail"], body=["body"], figures={"x": 1})
    path = finish(tmp_path / "r", report, plot)
    assert path.read_text().splitlines()[:5] == ["# T", "", "**VERDICT: valid**", "- detail", ""]
    assert "![T](plot.png)" in path.read_text() and (tmp_path / "r" / "plot.png").read_bytes() == b"png"
    assert orjson.loads((tmp_path / "r" / "figures.json").read_bytes()) == {"x": 1, "verdict": report.verdict}
    assert capsys.readouterr().out.rstrip().splitlines()[-2:] == ["VERDICT: valid", "  detail"]


def _result(target: str, users: int, failures: int = 0) -> Result:
    return Result(target, users, np.full(100, 2000.0 * users), failures, 1.0, 100)


def test_bench_servers_says_closed_loop_and_flags_failures(tmp_path: Path) -> None:
    ok = [_result("tfserving", 1), _result("torchserve", 1)]
    lines = servers.verdict(ok)
    assert lines[0].startswith("VERDICT: every request answered right; closed loop")
    assert lines[1] == "  1 users: tfserving 100 req/s, p50 2.00 ms, p99 2.00 ms; torchserve 100 req/s, p50 2.00 ms, " \
        "p99 2.00 ms"  # fmt: skip
    bad = servers.verdict([*ok, _result("torchserve", 8, failures=5)])
    assert bad[0] == "  torchserve at 8 users: 5 of 105 requests failed"
    assert bad[1].startswith("VERDICT: not valid where requests failed")
    servers.plot(ok, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 5_000


def _overload(lag_p99_ms: float, refused: float) -> dict:
    run = {"rate": 900.0, "goodput": 480.0, "refused_per_s": refused, "admitted_p99_ms": 9.0, "refused_p99_ms": 2.0,
           "send_lag_p99_ms": lag_p99_ms, "failed": 0}  # fmt: skip
    ci = {"mean": 0.0, "ci95": [0.0, 0.0]}
    return {"capacity": 500.0, "offered": 1500.0, "slo_ms": 10.0, "steps": [run], "runs": [run, run],
            "machine": {}, "summary": {"goodput_share_of_capacity": {**ci, "mean": 0.96}, "admitted_p99_ms":
            {**ci, "mean": 9.0}, "refused_p99_ms": {**ci, "mean": 2.0}}}  # fmt: skip


def test_bench_overload_judges_its_generator_before_its_goals(tmp_path: Path) -> None:
    _, verdict = overload._report(_overload(0.2, 300.0), 10.0)
    assert verdict[0].startswith("VERDICT: valid: the generator's send lag p99 was at most 0.20 ms (limit 0.50 ms")
    assert verdict[1] == ("VERDICT: goodput >= 90 % of capacity: met; admitted p99 within the 10 ms SLO: met; "
                          "refusals p99 < 10 ms: met")  # fmt: skip
    _, verdict = overload._report(_overload(0.9, 0.0), 10.0)
    assert verdict[0].startswith("VERDICT: NOT valid: the generator's send lag p99 reached 0.90 ms")
    assert "nothing was refused: raise --factor" in verdict[1]
    overload._plot(_overload(0.2, 300.0), tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 5_000


def test_bench_validation_says_when_the_host_disturbed_it() -> None:
    quiet = {"gateway decoder": (10.0, 11.0), "without type check": (8.0, 8.5), "byte scan alone": (1.0, 1.1),
             "walking every value": (30.0, 31.0), "pydantic strict": (60.0, 62.0)}  # fmt: skip
    lines = validation.verdict(quiet)
    assert lines[0] == "VERDICT: valid: the median repeat was within 1.10x of the minimum for every figure"
    assert lines[1] == ("VERDICT: the gateway's decoder checks a 1x784 body in 10.0 µs, 6.0x less than a strict "
                        "pydantic model (60.0 µs); its type check (the byte scan) adds 2.0 µs")  # fmt: skip
    noisy = {**quiet, "byte scan alone": (1.0, 2.0)}
    assert validation.verdict(noisy)[0].startswith("VERDICT: noisy: a figure's median repeat was 2.00x its minimum")
