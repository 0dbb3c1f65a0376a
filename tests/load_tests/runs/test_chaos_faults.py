"""load-chaos's faults: which signals reach the server and when (the run itself measures a real
stack: make load-chaos), and the file each run writes."""

from __future__ import annotations

import signal
import time

import pytest

from load_tests.runs import chaos
from load_tests.targets import Endpoints


def _stack(sent: list[tuple[str, int, float]]) -> chaos.Stack:
    t0 = time.monotonic()
    return chaos.Stack(Endpoints(), "http://127.0.0.1:1", lambda v, sig: sent.append((v, sig, time.monotonic() - t0)),
                       lambda v: True, "restarts", "standin")  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "signals"),
    [("kill", [signal.SIGKILL]), ("stall", [signal.SIGSTOP, signal.SIGCONT]), ("hang", [signal.SIGSTOP])],
)
def test_each_fault_sends_its_signals(fault: str, signals: list[int]) -> None:
    sent: list[tuple[str, int, float]] = []
    cfg = chaos.ChaosSettings(100.0, fault=fault, stall_s=0.2)
    chaos.inject(_stack(sent), "tfserving", cfg)
    time.sleep(0.4)
    assert [(v, s) for v, s, _ in sent] == [("tfserving", s) for s in signals]
    if fault == "stall":  # resumed after the stall, not at once
        assert 0.15 <= sent[1][2] - sent[0][2] < 0.35


def test_each_run_has_its_own_files() -> None:
    names = {chaos.name(chaos.ChaosSettings(1.0, compose=c, fault=f)) for c in (False, True) for f in chaos.FAULTS}
    assert names == {"chaos-native", "chaos-native-stall", "chaos-native-hang", "chaos-compose", "chaos-compose-stall",
                     "chaos-compose-hang"}  # fmt: skip


def test_an_unknown_fault_is_refused() -> None:
    with pytest.raises(SystemExit):
        chaos.main(["--faults", "kill,melt"])
