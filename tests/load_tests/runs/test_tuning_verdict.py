"""make bench-tuning's verdict and plot from figures with a known outcome."""

from __future__ import annotations

from pathlib import Path

from load_tests.runs import tuning


def _pts(cpu: list[float], valid: bool = True) -> list[dict[str, object]]:
    return [{"p50_ms": 4.0, "p99_ms": 8.0, "failed": 0, "cpu_us_per_req": c, "valid": valid, "reasons": []}
            for c in cpu]  # fmt: skip


def _result() -> dict[str, object]:
    return {
        "rates": [200.0, 500.0],
        "variants": {"before": "b", "tuned": "t"},
        "points": {
            "before@200": _pts([1600, 1580, 1620]),
            "tuned@200": _pts([1360, 1350, 1370]),
            "floor@200": _pts([590, 580, 600]),
            "before@500": _pts([1100, 1000, 1200]),
            "tuned@500": _pts([1050, 1150, 980], valid=False),
            "floor@500": _pts([500, 510, 490]),
        },
        "log_lines_per_1000": {"before": 18000.0, "tuned": 0.0},
    }


def test_the_verdict_counts_valid_points_and_says_which_differences_are_measured(tmp_path: Path) -> None:
    lines = tuning.verdict(_result())
    assert lines[0] == (
        "VERDICT: 15 of 18 points valid; 3 tripped the generator guard or had failures (kept in the means)"
    )
    assert lines[1] == "  200/s: tuned 0.85x before's CPU per request (1,360 vs 1,600 µs; the ranges are apart)"
    assert lines[2].startswith("  500/s: tuned 0.96x before's CPU per request (1,060 vs 1,100 µs; the ranges overlap")
    tuning.plot(_result(), tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 5_000
