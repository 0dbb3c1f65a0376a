"""Every Dockerfile passes hadolint; every service image pins its base, runs as uid 10001, and can
build offline (pip settings as build args without defaults, a wheelhouse outside the final image)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.deploy.conftest import BIN, run

DOCKERFILES = sorted(p for p in REPO.rglob("Dockerfile") if ".venv" not in p.parts)
PYTHON_BASE = REPO / "docker/python-base/Dockerfile"  # a base for offline builds, not a service
SERVICES = [p for p in DOCKERFILES if p != PYTHON_BASE]


def _id(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


def test_every_service_has_one() -> None:
    assert {_id(p) for p in SERVICES} == {
        "gateway/Dockerfile",
        "load_tests/Dockerfile",
        "serving/tfserving/Dockerfile",
        "serving/tfserving_standin/Dockerfile",
        "serving/torchserve/Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_hadolint_clean(dockerfile: Path) -> None:
    run(str(BIN / "hadolint"), "--failure-threshold", "info", str(dockerfile))


@pytest.mark.parametrize("dockerfile", SERVICES, ids=_id)
def test_base_image_pinned_and_user_not_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    base = re.search(r"^ARG \w+_IMAGE=(\S+)$", text, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)) and "latest" not in base.group(1)
    assert re.search(r"^USER 10001$", text, re.M)


@pytest.mark.parametrize("dockerfile", [p for p in SERVICES if "tfserving/" not in _id(p)], ids=_id)
def test_python_images_install_offline_when_asked(dockerfile: Path) -> None:
    """Unset by default (the package index); `containers.offline` passes them with a wheelhouse."""
    text = dockerfile.read_text()
    for arg in ("PIP_NO_INDEX", "PIP_FIND_LINKS"):
        assert re.search(rf"^ARG {arg}$", text, re.M), arg  # declared without a default
    assert re.search(r"^ARG WHEELHOUSE=docker/no-wheels$", text, re.M)
    stages = re.findall(r"^FROM .*$", text, re.M)
    assert len(stages) == 2 and "COPY --from=deps /opt/venv /opt/venv" in text  # the wheels stay in the first stage


def test_gateway_image_has_no_frameworks() -> None:
    lines = (REPO / "requirements/gateway.txt").read_text().lower().splitlines()
    packages = [line.split("==")[0] for line in lines if line and not line.startswith("#")]
    assert packages and not any(p.startswith(("tensorflow", "torch", "keras")) for p in packages)
