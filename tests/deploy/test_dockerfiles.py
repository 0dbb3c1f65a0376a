"""Every Dockerfile passes hadolint and pins its base image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.deploy.conftest import BIN, run

DOCKERFILES = sorted(p for p in REPO.rglob("Dockerfile") if ".venv" not in p.parts)


def test_every_service_has_one() -> None:
    names = {p.relative_to(REPO).as_posix() for p in DOCKERFILES}
    assert names == {
        "gateway/Dockerfile",
        "load_tests/Dockerfile",
        "serving/tfserving/Dockerfile",
        "serving/torchserve/Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_hadolint_clean(dockerfile: Path) -> None:
    run(str(BIN / "hadolint"), "--failure-threshold", "info", str(dockerfile))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_base_image_pinned_and_user_not_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    base = re.search(r"^ARG \w+_IMAGE=(\S+)$", text, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)) and "latest" not in base.group(1)
    assert re.search(r"^USER 10001$", text, re.M)


def test_gateway_image_has_no_frameworks() -> None:
    lines = (REPO / "requirements/gateway.txt").read_text().lower().splitlines()
    packages = [line.split("==")[0] for line in lines if line and not line.startswith("#")]
    assert packages and not any(p.startswith(("tensorflow", "torch", "keras")) for p in packages)
