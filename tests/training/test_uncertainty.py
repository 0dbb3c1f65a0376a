"""Uncertain answers: the non-digit sets, the rates and the choice rule on synthetic answers with a
known result, and the docs' table: generated from its own data, which a fresh measurement of the
session's models (the default training, as documented) reproduces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mnist_serving.spec import UNCERTAIN_BELOW
from tests.conftest import REPO
from training import nondigits, uncertainty
from training.uncertainty import Measured

DOCS = REPO / "docs" / "training.md"


def _probs(top: float, n: int, second: float | None = None) -> np.ndarray:
    """``n`` answers for class 0 with probability ``top``; the rest on class 1 (``second``) or spread."""
    p = np.zeros((n, 10))
    p[:, 0] = top
    if second is None:
        p[:, 1:] = (1 - top) / 9
    else:
        p[:, 1] = second
        p[:, 2:] = (1 - top - second) / 8
    return p


def test_nondigit_sets_are_deterministic_and_counted() -> None:
    sets = nondigits.all_sets()
    again = nondigits.all_sets.__wrapped__()  # bypass the cache: the same seed renders the same bytes
    assert [s.images for s in sets] == [s.images for s in again]
    assert [s.images for s in nondigits.all_sets(nondigits.SEED + 1)] != [s.images for s in sets]
    names = [s.name for s in sets]
    assert names == ["letters", "word", "noise", "shapes", "cat", "textures", "json noise"]
    for s in sets:
        rows, groups, refused = s.decoded
        assert len(rows) + len(refused) == len(s) > 0 and len(groups) == len(rows), s.name
        assert rows.dtype == np.float32 and rows.shape[1:] == (784,) and (rows.min(initial=0) >= 0)
    textures = sets[names.index("textures")]
    assert textures.refused["blank_image"] >= 6  # the plain ones, at least: nothing to read, a 422


def test_the_flag_is_strictly_below_the_threshold() -> None:
    p = np.vstack([_probs(UNCERTAIN_BELOW, 1), _probs(UNCERTAIN_BELOW - 1e-6, 1)])
    assert uncertainty.uncertain(p).tolist() == [False, True]


def test_rates_on_answers_with_a_known_result() -> None:
    labels = np.zeros(20, dtype=int)
    labels[15:] = 3  # the last 5 digits are 3s, answered 0: wrong
    m = Measured(
        digits={"mnist_test": (np.vstack([_probs(0.95, 10), _probs(0.5, 10)]), labels)},
        nondigits={"letters": np.vstack([_probs(0.3, 4), _probs(0.99, 1)]), "textures": np.zeros((0, 10))},
        inputs={"letters": 5, "textures": 3},
        refused={"letters": 0, "textures": 3},
    )
    r = uncertainty.rates(m, 0.8)
    assert r["false_alarms"] == {"mnist_test": 0.5}
    assert r["wrong_among_flagged"] == {"mnist_test": 0.5} and r["wrong_among_unflagged"] == {"mnist_test": 0.0}
    assert r["detections"] == {"letters": 0.8, "textures": None, "all": 0.8}  # refused inputs are not scored
    assert r["refused"] == {"letters": 0, "textures": 3}


def test_the_rule_picks_the_separating_threshold_and_prefers_top_probability() -> None:
    clean = Measured({"d": (_probs(0.95, 50), np.zeros(50, int))}, {"n": _probs(0.4, 50)}, {"n": 50}, {"n": 0})
    choice = uncertainty.choose({"a": clean, "b": clean})
    # Every score separates these perfectly; top probability wins the tie; the lowest perfect threshold.
    assert choice["score"] == "top probability" and choice["threshold"] == 0.45
    assert choice["scores"]["top probability"]["j"] == 1.0
    # Same top probability, but digits hesitate between two classes and non-digits spread thin: only
    # the entropy tells them apart, by far more than the preference margin, so the rule takes it.
    spread = Measured(
        {"d": (_probs(0.6, 50, second=0.4), np.zeros(50, int))}, {"n": _probs(0.6, 50)}, {"n": 50}, {"n": 0}
    )
    choice = uncertainty.choose({"a": spread})
    assert choice["score"] == "1 - normalised entropy" and choice["scores"]["top probability"]["j"] == 0.0


def test_the_docs_table_is_the_rendering_of_its_data_at_the_committed_threshold() -> None:
    found = uncertainty.docs_block(DOCS.read_text())
    assert found, f"{DOCS} has no generated uncertainty block"
    block, data = found
    assert uncertainty.render(data) == block  # generated, not edited by hand
    assert data["threshold"] == UNCERTAIN_BELOW and data["version"] == 1
    assert f"**below {UNCERTAIN_BELOW:.2f}**" in block


def test_a_fresh_measurement_reproduces_the_documented_rates(artifacts: Path, test_split) -> None:
    """The session trains the documented configuration. On this machine the training is bit-for-bit
    repeatable, so the figures are equal; another CPU may round differently and move an answer or two
    across the threshold, which the tolerance (1 point, or 2 inputs of a small category) allows."""
    found = uncertainty.docs_block(DOCS.read_text())
    assert found
    documented = found[1]
    fresh = json.loads(json.dumps(uncertainty.measure_version(artifacts, 1, test_split)))
    assert fresh["threshold"] == documented["threshold"] and fresh["data"] == documented["data"]
    for framework, rates in fresh["at_threshold"].items():
        doc = documented["at_threshold"][framework]
        assert rates["inputs"] == doc["inputs"] and rates["refused"] == doc["refused"]  # same sets, same refusals
        for section in ("false_alarms", "detections"):
            for key, value in rates[section].items():
                n = rates["inputs"].get(key, 1000)
                assert value == pytest.approx(doc[section][key], abs=max(0.01, 2 / n)), (framework, section, key)


def test_training_records_the_rates_per_version(artifacts: Path) -> None:
    (version,) = json.loads((artifacts / "manifest.json").read_text())["versions"]
    for framework in ("keras", "pytorch"):
        u = version["frameworks"][framework]["uncertainty"]
        assert u["threshold"] == UNCERTAIN_BELOW and u["score"] == "top probability"
        assert 0 <= u["false_alarms"]["mnist_test"] < 0.1 and u["detections"]["all"] > 0.4
    assert "non-digits flagged" in (artifacts / "training_report.md").read_text()
