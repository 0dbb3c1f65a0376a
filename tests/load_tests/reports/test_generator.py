"""make bench-generator's verdict and report from rows with a known outcome."""

from __future__ import annotations

from pathlib import Path

import orjson

from load_tests.reports import generator


def _row(rate: float, ok: bool, reasons: list[str] | None = None, failed: int = 0) -> dict[str, object]:
    return {"rate": rate, "processes": 1, "send_lag_p50_ms": 0.03, "send_lag_p99_ms": 0.4, "lag_impact_ms": 0.1,
            "generator_cpu_share": 0.4, "generator_cpu_us_per_req": 90.0, "machine_idle": 0.5, "failed": failed,
            "reasons": reasons or [], "ok": ok}  # fmt: skip


def test_the_verdict_names_the_highest_valid_rate_and_why_the_others_are_not() -> None:
    rows = [_row(500, True), _row(1000, True), _row(2000, False, ["send lag moved p99 by 0.9 ms (> 5% of the SLO)"]),
            _row(4000, False, [], failed=100)]  # fmt: skip
    lines = generator.verdict(rows)
    assert lines[0] == "  2,000 req/s invalid: send lag moved p99 by 0.9 ms (> 5% of the SLO)"
    assert lines[1].startswith("  4,000 req/s invalid: 100 request(s) not answered correctly")
    assert "the machine did not keep up" in lines[1]
    assert lines[-1].startswith("VERDICT: the generator is fit to measure up to 1,000 req/s on this machine (2 of 4")


def test_no_valid_rate_says_so() -> None:
    lines = generator.verdict([_row(500, False, ["generator CPU 95% of a core (> 80%, waits included)"])])
    assert lines[-1].startswith("VERDICT: no rate measured here is valid")


def test_the_report_has_the_verdict_a_table_and_a_plot(tmp_path: Path) -> None:
    rows = [_row(500, True), _row(1000, False, ["machine idle 2.0% (< 5%)"])]
    body = {"sender": "timerfd", "spin_us": 0.0, "priority": "normal", "load_avg_before": ["0.1", "0.2", "0.3"],
            "rates": rows, "verdict": generator.verdict(rows)}  # fmt: skip
    (tmp_path / "generator.json").write_bytes(orjson.dumps(body))
    text = generator.write(tmp_path).read_text()
    assert "**VERDICT: the generator is fit to measure up to 500 req/s" in text
    assert "| 1,000 | 1 |" in text and "no: machine idle 2.0% (< 5%)" in text
    assert (tmp_path / "generator.png").stat().st_size > 10_000
