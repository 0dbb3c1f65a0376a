from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mnist_serving.ports import local_url
from serving.native.stack import ServingStack


@pytest.fixture(scope="session")
def stack(serving_stack: ServingStack) -> ServingStack:
    return serving_stack


@pytest.fixture(scope="session")
def tf_url(stack: ServingStack) -> str:
    return local_url(stack.ports.tfserving_rest)


@pytest.fixture(scope="session")
def ts_url(stack: ServingStack) -> str:
    return local_url(stack.ports.torchserve_inference)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def rows(test_split) -> np.ndarray:
    """Real MNIST test digits."""
    return test_split.x_test[:64]


@pytest.fixture(scope="session")
def artifact_dir(artifacts: Path) -> Path:
    return artifacts
