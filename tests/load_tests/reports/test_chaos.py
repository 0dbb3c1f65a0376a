"""The chaos run's analysis on a table whose answer is known: phases, failover, recovery, goals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from load_tests.contracts import VIA
from load_tests.reports import chaos

TF, TS = VIA.index("tfserving"), VIA.index("torchserve")


def _table() -> dict[str, np.ndarray]:
    """100 req/s for 60 s; tfserving killed at 20 s: 3 requests fail, torchserve answers from
    20.05 s, tfserving READY at 31 s and back from 36 s."""
    t = np.arange(0, 60, 0.01)
    n = len(t)
    via = np.where((t >= 20) & (t < 36), TS, TF)
    ok = np.ones(n, dtype=bool)
    failed = [2000, 2001, 2002]  # sent at 20.00-20.02 s
    ok[failed] = False
    ms = np.where(via == TS, 8.0, 3.0)
    ms[failed] = np.inf
    code = np.where(ok, 200, 0)
    code[2002] = 503
    return {"t": t, "ms": ms, "ok": ok, "code": code, "via": via}


def test_phases_failover_and_recovery() -> None:
    events = {"kill_s": 20.0, "ready_s": 31.0, "circuit_open_s": 20.2}
    r = chaos.analyse(_table(), events, "tfserving")
    assert r["requests"] == 6000 and r["failed"] == 3 and r["failed_codes"] == {"0": 2, "503": 1}
    assert r["failed_after_breaker_opened"] == 0 and r["goals"] == {"failed_share": True, "none_after_breaker": True}
    assert abs(r["failover_s"] - 0.038) < 1e-6  # the request sent at 20.03 s, answered 8 ms later
    assert r["ready_again_s"] == 11.0 and abs(r["back_in_rotation_s"] - 16.0) < 1e-6
    ph = r["phases"]
    assert [ph[p]["requests"] for p in chaos.PHASES] == [2000, 1100, 500, 2400]
    assert ph["before"]["served_by"] == {"tfserving": 2000} and ph["outage"]["failed"] == 3
    assert ph["outage"]["p99_ms"] == 8.0 and ph["after"]["p50_ms"] == 3.0
    assert ph["rejoining"]["served_by"] == {"torchserve": 500}


def test_goals_fail_when_failures_continue_after_the_breaker(tmp_path: Path) -> None:
    table = _table()
    table["ok"][2500:2600] = False  # 25-26 s, well after the circuit opened
    table["ms"][2500:2600] = np.inf
    r = chaos.analyse(table, {"kill_s": 20.0, "ready_s": None, "circuit_open_s": 20.2}, "tfserving")
    assert r["failed_after_breaker_opened"] == 100 and not r["goals"]["none_after_breaker"]
    assert r["ready_again_s"] is None and r["phases"]["rejoining"]["requests"] == 0
    text = "\n".join(chaos.section({"native": {"settings": {"rate": 100, "duration_s": 60, "kill_at_s": 20},
                                               "result": r, "plot": chaos.plot(table, r, 20.0, tmp_path / "c.png")}}))  # fmt: skip
    assert "**not met**" in text and "| outage" in text and "![c.png](c.png)" in text
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    assert chaos.verdict(r) == [
        f"VERDICT: {r['failed']} of {r['requests']:,} requests failed ({r['failed_share']:.3%}); fewer than 0.5% of "
        "requests failed: NOT met; none failed once the killed server's circuit was open: NOT met"
    ]
