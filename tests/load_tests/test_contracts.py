"""The runner-generator contract: a RunSpec round-trips through its one env var; by-hand conveniences."""

from __future__ import annotations

import pytest

from load_tests.contracts import SPEC_ENV, RunSpec


def test_spec_round_trips_through_the_environment() -> None:
    spec = RunSpec(rate=1234.5, seed=7, duration_s=9.0, warmup_s=1.0, window_s=2.5, slo_ms=20.0, processes=3,
                   spin_us=800.0, out="/tmp/x")  # fmt: skip
    env = spec.to_env()
    assert list(env) == [SPEC_ENV]
    assert RunSpec.from_env(env) == spec
    # LOAD_SPEC wins over the conveniences.
    assert RunSpec.from_env({**env, "LOAD_RATE": "5"}) == spec


def test_by_hand_conveniences_build_a_spec() -> None:
    spec = RunSpec.from_env({"LOAD_RATE": "500", "LOAD_SEED": "3", "LOAD_WARMUP_S": "2", "LOAD_EXACT_OUT": "/r/x"})
    assert (spec.rate, spec.seed, spec.warmup_s, spec.out, spec.processes) == (500.0, 3, 2.0, "/r/x", 1)
    assert RunSpec.from_env({}) == RunSpec()


def test_a_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError):
        RunSpec(rate=0)
    with pytest.raises(ValueError):
        RunSpec(processes=0)
