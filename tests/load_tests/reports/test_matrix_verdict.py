"""load-matrix's verdict: failures make a level invalid; closed loop is said, whatever the figures."""

from __future__ import annotations

import numpy as np

from load_tests.reports import matrix
from load_tests.stats import RunResult


def test_failures_are_named_and_the_verdict_says_what_a_closed_loop_is() -> None:
    ok = RunResult("tfserving", 8, np.ones(100), 0, 1.0)
    assert matrix.verdict([ok])[-1].startswith("VERDICT: no request failed; closed loop, one run per level")
    lines = matrix.verdict([ok, RunResult("torchserve", 32, np.ones(90), 10, 1.0)])
    assert lines[0] == "  torchserve at 32 users: 10 failures"
    assert lines[1].startswith("VERDICT: not valid where requests failed (above)")
